package audit

import "context"

func openPostgresBrowser(ctx context.Context, url string, o BrowseOptions) (Browser, error) {
	return nil, nil
}
