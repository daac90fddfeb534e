package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/cli"
	"github.com/kavachgate/kavach/internal/pgtest"
)

// pgAudit is the audit option of a kavach app writing to the database at
// url as node, signing with keyFile.
func pgAudit(url, node, keyFile string) *audit.Config {
	return &audit.Config{Sink: audit.SinkPostgres, URL: url, Node: node, Key: keyFile}
}

// runAuditCmd runs `kavach audit <args>` and returns what it printed.
func runAuditCmd(args ...string) (string, error) {
	var out bytes.Buffer
	code := cli.Run(context.Background(), &cli.Env{DataDir: caddy.AppDataDir()}, append([]string{"audit"}, args...), nil, &out, &out)
	if code != 0 {
		// cli.Run printed the error last: "Error: <err>".
		_, msg, _ := strings.Cut(out.String(), "Error: ")
		return out.String(), fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(msg))
	}
	return out.String(), nil
}

// TestAuditPostgres: two gateways (apps) write one trail into PostgreSQL,
// each as its node with the shared key; `kavach audit verify` and `audit
// query` read it by URL, and never print the password.
func TestAuditPostgres(t *testing.T) {
	t.Parallel()
	const secret = "pw-hunter2"
	// Trust authentication ignores the password; it is there to be hidden.
	url := strings.Replace(pgtest.Start(t), "postgres@", "postgres:"+secret+"@", 1)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "audit.key")
	for _, node := range []string{"gw1", "gw2"} {
		c := pgAudit(url, node, keyFile)
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		w, err := openTrail(c)
		if err != nil {
			t.Fatalf("start %s: %v", node, err)
		}
		if !strings.HasPrefix(w.Stream(), node+"-") {
			t.Errorf("stream %s is not named after node %s", w.Stream(), node)
		}
		for i := range 5 {
			rec := audit.Record{Kind: audit.KindDecision, Decision: audit.Allow, RequestID: fmt.Sprintf("%s-%d", node, i),
				Sub: "usr_alice", Actor: "agt_" + node, Agents: []string{"agt_root", "agt_" + node}, Method: "GET", Host: "api.internal", Path: "/x"}
			if err := w.WriteDurable(context.Background(), &rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pub := filepath.Join(dir, "audit.pub")

	out, err := runAuditCmd("verify", "--key", pub, url)
	if err != nil || !strings.HasPrefix(out, "ok: 12 records, 2 checkpoints, 2 streams") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if strings.Contains(out, secret) || !strings.Contains(out, "postgres:xxxxx@") || !strings.Contains(out, "(node gw2)") {
		t.Errorf("verify output should name the database without its password and the nodes:\n%s", out)
	}
	if out, err := runAuditCmd("verify", url); err == nil || !strings.Contains(err.Error(), "--key") || strings.Contains(out, secret) {
		t.Errorf("verify of a database without --key: %v\n%s", err, out)
	}

	out, err = runAuditCmd("query", "--agent", "agt_gw2", "--json", url)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], `"request_id":"gw2-0"`) {
		t.Fatalf("query --agent agt_gw2 --json: %d lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if _, err := audit.ParseLine([]byte(l)); err != nil {
			t.Errorf("query printed a line that is not a record: %v", err)
		}
	}
	out, err = runAuditCmd("query", "--decision", "allow", url)
	if err != nil || strings.Count(out, "agt_gw") != 10 || !strings.HasPrefix(out, "TIME") {
		t.Errorf("query --decision allow (table): %v\n%s", err, out)
	}

	// A deleted row: verify fails, names the seq, exits non-zero.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `DELETE FROM kavach_audit WHERE node = 'gw1' AND seq = 3`); err != nil {
		t.Fatal(err)
	}
	out, err = runAuditCmd("verify", "--key", pub, url)
	if err == nil || !strings.Contains(out, "FAIL") || !strings.Contains(err.Error(), "seq 3 missing") || strings.Contains(out+err.Error(), secret) {
		t.Fatalf("verify after deleting seq 3: %v\n%s", err, out)
	}
}

// TestAuditPostgresStartFailsClosed: the app does not start without its
// database, and says why without the password.
func TestAuditPostgresStartFailsClosed(t *testing.T) {
	t.Parallel()
	const secret = "pw-hunter2"
	url := strings.Replace(pgtest.Start(t), "postgres@", "postgres:"+secret+"@", 1)
	missing := url[:strings.LastIndex(url, "/")] + "/no_such_database?sslmode=disable"
	w, err := openTrail(pgAudit(missing, "gw1", filepath.Join(t.TempDir(), "audit.key")))
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "no_such_database") {
		t.Fatalf("start with a database that is not there: %v", err)
	}
	if w != nil {
		t.Error("a writer without its database")
	}
}

// TestAuditPostgresConfig: settings that belong to postgres are refused
// elsewhere, and a URL is checked at load without being shown. Not
// parallel: it sets an environment variable.
func TestAuditPostgresConfig(t *testing.T) {
	for _, c := range []audit.Config{
		{Sink: audit.SinkPostgres},
		{Sink: audit.SinkPostgres, URL: "postgres://u:hunter2@h:0x/db"},
		{Sink: audit.SinkPostgres, URL: "redis://u:hunter2@h/0"},
		{Sink: audit.SinkPostgres, URL: "{env.X}", Key: "/etc/kavach/audit.pem"},
		{Sink: audit.SinkPostgres, URL: "{env.X}", Node: "gw/1"},
		{Sink: audit.SinkPostgres, URL: "{env.X}", Path: "./a.jsonl"},
		{Sink: audit.SinkFile, Path: "./a.jsonl", URL: "postgres://h/db"},
		{Sink: audit.SinkStdout, Node: "gw1"},
	} {
		err := c.Validate()
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, c := range []audit.Config{
		{Sink: audit.SinkPostgres, URL: "{env.KAVACH_AUDIT_DB}"},
		{Sink: audit.SinkPostgres, URL: "postgresql://u:{env.PW}@db.internal/kavach", Node: "{env.HOSTNAME}", Key: "{env.DIR}/audit.key"},
		{Sink: audit.SinkPostgres, URL: "postgres://db.internal/kavach?sslmode=verify-full", Node: "gw-eu.1"},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	// Placeholders resolve when the app starts.
	t.Setenv("KAVACH_TEST_AUDIT_DB", "mysql://u:hunter2@h/db")
	c := audit.Config{Sink: audit.SinkPostgres, URL: "{env.KAVACH_TEST_AUDIT_DB}", Resolve: func(s string) string { return caddy.NewReplacer().ReplaceAll(s, "") }}
	if _, err := c.Resolved(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("resolved URL not checked: %v", err)
	}
}
