package issuer

import (
	"flag"
	"os"
	"testing"

	"github.com/kavachgate/kavach/internal/pgtest"
)

// webStore is the store newEnv opens: "sqlite", then "postgres".
var webStore = "sqlite"

// TestMain runs the package's tests, then runs the ones built on newEnv
// (authorization code flow, pages, registration, metadata documents, keys)
// a second time on PostgreSQL; the agent tests cover both stores in each
// test already. An explicit -run selects one pass on SQLite only. It stops
// the PostgreSQL server the tests started (pgtest).
func TestMain(m *testing.M) {
	os.Exit(pgtest.RunFunc(func() int {
		flag.Parse()
		explicit := flag.Lookup("test.run").Value.String() != ""
		if code := m.Run(); code != 0 || explicit {
			return code
		}
		webStore = "postgres"
		if err := flag.Set("test.run", "^("+envTests+")$"); err != nil {
			return 1
		}
		return m.Run()
	}))
}

// envTests are the tests that build their issuer with newEnv.
const envTests = "TestAdminJSONStrict|TestRefreshGraceSameSuccessor|TestRefreshGraceAfterSuccessorUsed|TestRefreshGraceReplayAfterWindow|TestRefreshGraceConcurrent|TestClientMetadataDocumentFlow|TestClientMetadataSSRF|TestClientMetadataDocumentRules|" +
	"TestKeyRotation|TestKeyRevoke|TestClientRevoke|TestReplayStoreDownFailsClosed|TestRegister|TestRegisterRefuses|TestRegisterDisabled|TestCodeFlowWithOAuth2Client|" +
	"TestAuthorizeWithSessionSkipsLogin|TestAuthorizeRejectsBadPKCE|TestAuthorizeNeverRedirectsToUntrustedURI|TestCodeExchangePKCE|" +
	"TestCodeExchangeMismatches|TestCodeReuseRevokesFirstTokens|TestExpiredCode|TestLoginCSRF|TestConsentCSRF|TestConsentDeny|" +
	"TestConsentBeyondEntitlements|TestRefreshRotationAndReuse|TestRefreshScopeAndResource|TestLoginBruteForce|" +
	"TestLoginLimitPerAddress|TestRevokedUser|TestConsoleRevokeCascade|TestConsoleConsents|TestConsoleUserIsolation|TestAdminConsents"
