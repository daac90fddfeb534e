package gateway

import (
	"testing"

	"github.com/kavachgate/kavach/token"
)

// TestChainKeyOf: a session survives what keeps its principal (a new
// consent of the same user to the same client: MCP step-up), and no other
// chain shares its key.
func TestChainKeyOf(t *testing.T) {
	tok := func(sub, client string, chain, agents []string) *token.Token {
		tk := &token.Token{Claims: token.Claims{Issuer: testIssuer, Subject: sub, ClientID: client}}
		if chain != nil {
			tk.Kavach = &token.Kavach{Version: token.KavachVersion, Chain: chain, Agents: agents}
		}
		return tk
	}
	app := ChainKeyOf(tok("usr_alice", "cli_app", []string{"dlg_consent1"}, []string{"cli_app"}))
	if got := ChainKeyOf(tok("usr_alice", "cli_app", []string{"dlg_consent2"}, []string{"cli_app"})); got != app {
		t.Error("a new consent of the same user to the same client (step-up) changed the session key")
	}
	orch := ChainKeyOf(tok("usr_alice", "agt_orch", []string{"dlg_o"}, []string{"agt_orch"}))
	for name, other := range map[string]*token.Token{
		"another user, same client":     tok("usr_bob", "cli_app", []string{"dlg_consent1"}, []string{"cli_app"}),
		"same user, another client":     tok("usr_alice", "cli_other", []string{"dlg_consent1"}, []string{"cli_other"}),
		"the orchestrator's child":      tok("usr_alice", "agt_rev", []string{"dlg_o", "dlg_r"}, []string{"agt_orch", "agt_rev"}),
		"another child of the same one": tok("usr_alice", "agt_rev2", []string{"dlg_o", "dlg_r2"}, []string{"agt_orch", "agt_rev2"}),
	} {
		if k := ChainKeyOf(other); k == app || k == orch {
			t.Errorf("%s shares a session key", name)
		}
	}
	if ChainKeyOf(tok("usr_alice", "agt_rev", []string{"dlg_o", "dlg_r"}, []string{"agt_orch", "agt_rev"})) ==
		ChainKeyOf(tok("usr_alice", "agt_rev2", []string{"dlg_o", "dlg_r2"}, []string{"agt_orch", "agt_rev2"})) {
		t.Error("two children of one parent share a session key")
	}
}
