// Package redisurl turns the Redis URL of Kavach's `redis` option into
// go-redis options, the same way for every user of that Redis (the
// revocation set, the MCP session store), so one URL means one thing.
//
// Errors never contain the URL: it may carry a password.
package redisurl

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults for what the URL does not say.
const (
	DialTimeout = 2 * time.Second // dial
	IOTimeout   = 2 * time.Second // read and write
)

// Parse reads redis://[user:pass@]host:port/db or rediss://… (TLS) as
// redis.ParseURL does, query parameters such as dial_timeout included,
// then fills what the URL leaves open: 2 s dial, read and write timeouts,
// one dial per attempt (callers bound their own retries: a dial that
// retried five times would hold a request, or a reconnect, for five dial
// timeouts), RESP2 unless the URL asks for protocol=3 (plain arrays for
// pub/sub, understood by every Redis and its look-alikes), context
// deadlines honoured, maintenance notifications off.
func Parse(rawURL string) (*redis.Options, error) {
	if rawURL == "" {
		return nil, errors.New("a Redis URL is required")
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		// url.Error quotes the whole URL; keep only its reason.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid Redis URL: %w", err)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = IOTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = IOTimeout
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	o.ContextTimeoutEnabled = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o, nil
}
