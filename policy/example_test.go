package policy_test

import (
	"fmt"
	"time"

	"github.com/kavachgate/kavach/policy"
)

func ExampleMatch() {
	fmt.Println(policy.Match("mcp:*", "mcp:github"))
	fmt.Println(policy.Match("mcp:github", "mcp:github:admin")) // segment counts differ
	fmt.Println(policy.Match("*", "a:b"))                       // '*' is one segment, not everything
	fmt.Println(policy.Match("mcp:github", "mcp:*"))            // a concrete scope never matches a pattern
	// Output:
	// true
	// false
	// false
	// false
}

func ExampleCovers() {
	parent := []string{"mcp:*", "repository:read"}
	fmt.Println(policy.Covers(parent, []string{"mcp:github", "mcp:*"}))
	fmt.Println(policy.Covers(parent, []string{"repository:write", "mcp:github:admin"}))
	fmt.Println(policy.Uncovered(parent, []string{"repository:read", "repository:write", "mcp:github:admin"}))
	// Output:
	// true
	// false
	// [repository:write mcp:github:admin]
}

func ExampleAttenuate() {
	exp := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	orchestrator := policy.Rights{
		Scopes:   []string{"mcp:review", "pullrequest:read", "repository:*"},
		Audience: []string{"http://127.0.0.1:8080/mcp"},
		Constraints: policy.Constraints{
			Hosts: policy.StringList{"*.corp.example"},
			Audit: policy.AuditRequired,
		},
		Expiry: exp,
		Depth:  1,
	}

	reviewer, err := policy.Attenuate(orchestrator, policy.Request{
		Scopes:      []string{"mcp:review", "repository:read"},
		Constraints: policy.Constraints{Hosts: policy.StringList{"git.corp.example"}},
		Expiry:      exp.Add(-57 * time.Minute),
		Delegate:    true,
	})
	fmt.Println(err)
	fmt.Println(reviewer.Scopes, reviewer.Audience, reviewer.Constraints.Hosts)
	fmt.Println("audit required:", reviewer.Constraints.AuditRequired(), "depth:", reviewer.Depth)

	_, err = policy.Attenuate(reviewer, policy.Request{Scopes: []string{"repository:write"}, Delegate: true})
	fmt.Println(err)
	_, err = policy.Attenuate(reviewer, policy.Request{Constraints: policy.Constraints{Hosts: policy.StringList{"corp.example"}}})
	fmt.Println(err)
	_, err = policy.Attenuate(reviewer, policy.Request{Expiry: exp})
	fmt.Println(err)
	// Output:
	// <nil>
	// [mcp:review repository:read] [http://127.0.0.1:8080/mcp] [git.corp.example]
	// audit required: true depth: 2
	// scope: "repository:write" not within the parent's scopes
	// hosts: "corp.example" is not within the parent's hosts
	// exp: 2026-03-01T12:00:00Z is after the parent's expiry 2026-03-01T11:03:00Z
}

func ExampleRights_Permits() {
	rights := policy.Rights{
		Scopes:      []string{"mcp:review", "repository:read"},
		Audience:    []string{"http://127.0.0.1:8080/mcp"},
		Constraints: policy.Constraints{Methods: policy.StringList{"GET", "POST"}},
		Expiry:      time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	op := policy.Operation{
		Scopes:   []string{"mcp:review", "repository:read"},
		Resource: "http://127.0.0.1:8080/mcp",
		Host:     "127.0.0.1",
		Method:   "POST",
		Path:     "/mcp",
		BodySize: -1,
		At:       time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC),
	}
	fmt.Println(rights.Permits(&op))
	op.Scopes = []string{"mcp:review", "repository:write"}
	fmt.Println(rights.Permits(&op))
	// Output:
	// <nil>
	// scope: "repository:write" is not granted
}

func ExampleArgRule_Check() {
	rule := policy.ArgRule{Hosts: policy.StringList{"*.corp.example"}}
	for _, u := range []string{
		"https://api.corp.example/v1",
		"https://api.corp.example.evil.example/",
		"https://api.corp.example@evil.example/",
		"http://169.254.169.254/latest/meta-data/",
	} {
		host, _, fe := rule.Check("url", policy.ArgValue{Type: policy.ArgString, Text: u})
		if fe != nil {
			fmt.Println(fe.Reason)
			continue
		}
		fmt.Println("allowed:", host)
	}
	paths := policy.ArgRule{Paths: policy.StringList{"/repo/*"}}
	_, _, fe := paths.Check("path", policy.ArgValue{Type: policy.ArgString, Text: "/repo/../etc/passwd"})
	fmt.Println(fe.Reason)
	// Output:
	// allowed: api.corp.example
	// argument "url" names a host outside *.corp.example
	// argument "url" carries userinfo ('@')
	// argument "url" names a host outside *.corp.example
	// argument "path" has a '..' segment
}
