package idp

// The tests' OpenID provider is internal/oidctest (zitadel/oidc's
// certified op package on loopback), shared with package issuer's tests.

import (
	"net/url"
	"testing"

	"github.com/kavachgate/kavach/internal/oidctest"
)

const (
	opClientID      = oidctest.ClientID
	opClientSecret  = oidctest.ClientSecret
	opOtherClientID = oidctest.OtherClientID
	opRedirect      = "http://127.0.0.1:1/oauth/idp/callback" // never dialled: the test stops at it

	faultNone      = oidctest.FaultNone
	faultNonce     = oidctest.FaultNonce
	faultIssuer    = oidctest.FaultIssuer
	faultExpired   = oidctest.FaultExpired
	faultSignature = oidctest.FaultSignature
	faultDeny      = oidctest.FaultDeny
	faultUserinfo  = oidctest.FaultUserinfo
)

var alice, carol = oidctest.Alice, oidctest.Carol

type testOP = oidctest.OP

func startOP(t testing.TB) *testOP { return oidctest.Start(t, opRedirect) }

func signIn(t testing.TB, authURL string) url.Values { return oidctest.SignIn(t, authURL, opRedirect) }
