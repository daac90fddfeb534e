package issuer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminJSONStrict: a repeated member or a member in another case is
// refused, not silently merged by encoding/json.
func TestAdminJSONStrict(t *testing.T) {
	e := newEnv(t)
	for name, body := range map[string]string{
		"repeated":      `{"name":"a","name":"b"}`,
		"case variant":  `{"name":"a","Name":"b"}`,
		"only a case":   `{"Name":"a"}`,
		"unknown":       `{"name":"a","admin":true}`,
		"repeated map":  `{"https://x.test/a":["a:b"],"https://x.test/a":["c:d"]}`,
		"trailing data": `{"name":"a"} {}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := "/v1/users"
			method := http.MethodPost
			if strings.HasPrefix(name, "repeated map") {
				path, method = "/v1/users/"+e.user.ID+"/entitlements", http.MethodPut
			}
			w := httptest.NewRecorder()
			e.s.AdminHandler().ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
			if w.Code != http.StatusBadRequest {
				t.Errorf("%s: %d %s, want 400", body, w.Code, w.Body)
			}
		})
	}
}
