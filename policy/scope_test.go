package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestValidScope(t *testing.T) {
	t.Parallel()
	maxLen := strings.Repeat("a", MaxScopeLen)
	maxSegs := strings.Repeat("a:", MaxScopeSegments-1) + "a"
	tests := []struct {
		name  string
		scope string
		want  string // substring of the error; "" = valid
	}{
		{"simple", "read", ""},
		{"segments", "mcp:github:issues", ""},
		{"wildcard segment", "mcp:*", ""},
		{"only wildcard", "*", ""},
		{"all RFC 6749 chars", "!#$%&'()+,-./;<=>?@[]^_`{|}~0aZ", ""},
		{"max length", maxLen, ""},
		{"max segments", maxSegs, ""},
		{"empty", "", "empty scope"},
		{"too long", maxLen + "a", "at most 256"},
		{"too many segments", maxSegs + ":a", "more than 16 segments"},
		{"leading colon", ":a", "empty segment"},
		{"trailing colon", "a:", "empty segment"},
		{"double colon", "a::b", "empty segment"},
		{"lone colon", ":", "empty segment"},
		{"star inside segment", "repo*", "whole segment"},
		{"star suffix", "mcp:git*", "whole segment"},
		{"double star", "mcp:**", "whole segment"},
		{"space", "a b", "' '"},
		{"double quote", `a"b`, `'"'`},
		{"backslash", `a\b`, `'\\'`},
		{"tab", "a\tb", "byte 0x09"},
		{"DEL", "a\x7fb", "byte 0x7f"},
		{"non-ASCII", "café", "byte 0xc3"},
		{"NUL", "a\x00", "byte 0x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidScope(tt.scope)
			checkErr(t, err, "scope", tt.want)
		})
	}
}

// checkErr asserts err is nil when want is "", else a *FieldError for field
// whose message contains want.
func checkErr(t *testing.T, err error, field, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FieldError", err, err)
	}
	if fe.Field != field {
		t.Errorf("field = %q, want %q (error %v)", fe.Field, field, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestValidRequiredScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, scope, want string
	}{
		{"concrete", "repository:read", ""},
		{"concrete single", "mcp", ""},
		{"wildcard rejected", "mcp:*", "must be concrete"},
		{"wildcard first", "*:read", "must be concrete"},
		{"only wildcard", "*", "must be concrete"},
		{"invalid still invalid", "a::b", "empty segment"},
		{"literal star inside is invalid, not a wildcard", "a*", "whole segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkErr(t, ValidRequiredScope(tt.scope), "scope", tt.want)
		})
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		pattern, scope string
		want           bool
	}{
		{"equal", "repository:read", "repository:read", true},
		{"different", "repository:read", "repository:write", false},
		{"shorter pattern does not cover longer scope", "mcp:github", "mcp:github:admin", false},
		{"longer pattern does not cover shorter scope", "mcp:github:admin", "mcp:github", false},
		{"star is one segment, not everything", "*", "a:b", false},
		{"star matches one segment", "*", "a", true},
		{"mcp:* matches mcp:x", "mcp:*", "mcp:x", true},
		{"mcp:* matches mcp:*", "mcp:*", "mcp:*", true},
		{"mcp:x does not match mcp:*", "mcp:x", "mcp:*", false},
		{"star needs same segment count", "mcp:*", "mcp:x:y", false},
		{"star in middle", "a:*:c", "a:b:c", true},
		{"star in middle mismatch", "a:*:c", "a:b:d", false},
		{"all stars", "*:*", "a:b", true},
		{"prefix is not a segment match", "mcp:git", "mcp:github", false},
		{"case-sensitive", "Repo:read", "repo:read", false},
		{"empty both", "", "", false},
		{"empty pattern", "", "a", false},
		{"empty scope", "*", "", false},
		{"empty segment in scope", "*:*", "a:", false},
		{"empty segment in pattern", "a::b", "a::b", false},
		{"literal star in segment is literal", "a*", "ab", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Match(tt.pattern, tt.scope); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.scope, got, tt.want)
			}
		})
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	many := make([]string, MaxScopes+1)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i)
	}
	tests := []struct {
		name string
		in   string
		want []string
		err  string
	}{
		{"empty is none", "", nil, ""},
		{"one", "repository:read", []string{"repository:read"}, ""},
		{"several in order", "b a:* c", []string{"b", "a:*", "c"}, ""},
		{"duplicates keep first place", "b a b c a", []string{"b", "a", "c"}, ""},
		{"max scopes", strings.Join(many[:MaxScopes], " "), many[:MaxScopes], ""},
		{"max scopes with duplicates", strings.Join(many[:MaxScopes], " ") + " " + many[0], many[:MaxScopes], ""},
		{"too many", strings.Join(many, " "), nil, "more than 64 scopes"},
		{"leading space", " a", nil, "single spaces"},
		{"trailing space", "a ", nil, "single spaces"},
		{"double space", "a  b", nil, "single spaces"},
		{"only space", " ", nil, "single spaces"},
		{"tab", "a\tb", nil, "single spaces"},
		{"newline", "a\nb", nil, "single spaces"},
		{"CR", "a\r", nil, "single spaces"},
		{"invalid scope", "a b::c", nil, "empty segment"},
		{"non-breaking space is not a separator", "a\u00a0b", nil, "byte 0xc2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseScopes(tt.in)
			checkErr(t, err, "scope", tt.err)
			if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("ParseScopes(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"nil", nil, ""},
		{"one", []string{"a"}, "a"},
		{"several", []string{"a", "b:*", "c"}, "a b:* c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := FormatScopes(tt.in)
			if got != tt.want {
				t.Fatalf("FormatScopes(%q) = %q, want %q", tt.in, got, tt.want)
			}
			back, err := ParseScopes(got)
			if err != nil || !slices.Equal(back, tt.in) {
				t.Errorf("ParseScopes(FormatScopes) = %q, %v", back, err)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		have []string
		need string
		want bool
	}{
		{"exact", []string{"a", "b"}, "b", true},
		{"pattern", []string{"x", "repository:*"}, "repository:read", true},
		{"none", []string{"a", "b"}, "c", false},
		{"nil have", nil, "a", false},
		{"deeper scope not implied", []string{"mcp:github"}, "mcp:github:admin", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Allows(tt.have, tt.need); got != tt.want {
				t.Errorf("Allows(%q, %q) = %v, want %v", tt.have, tt.need, got, tt.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		parent, child []string
		uncovered     []string // nil: Covers is true
	}{
		{"mcp:github does not cover mcp:github:admin", []string{"mcp:github"}, []string{"mcp:github:admin"}, []string{"mcp:github:admin"}},
		{"* does not cover a:b", []string{"*"}, []string{"a:b"}, []string{"a:b"}},
		{"mcp:* covers mcp:x", []string{"mcp:*"}, []string{"mcp:x"}, nil},
		{"mcp:* covers mcp:*", []string{"mcp:*"}, []string{"mcp:*"}, nil},
		{"mcp:x does not cover mcp:*", []string{"mcp:x"}, []string{"mcp:*"}, []string{"mcp:*"}},
		{"*:* covers mcp:*", []string{"*:*"}, []string{"mcp:*"}, nil},
		{"equal sets", []string{"a", "b"}, []string{"b", "a"}, nil},
		{"subset", []string{"a", "b", "c"}, []string{"b"}, nil},
		{"superset", []string{"a"}, []string{"a", "b"}, []string{"b"}},
		{"several uncovered in child order", []string{"a"}, []string{"c", "a", "b"}, []string{"c", "b"}},
		{"empty child is covered", []string{"a"}, nil, nil},
		{"empty parent covers nothing", nil, []string{"a"}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Covers(tt.parent, tt.child); got != (tt.uncovered == nil) {
				t.Errorf("Covers(%q, %q) = %v", tt.parent, tt.child, got)
			}
			got := Uncovered(tt.parent, tt.child)
			if !slices.Equal(got, tt.uncovered) || (got == nil) != (tt.uncovered == nil) {
				t.Errorf("Uncovered(%q, %q) = %q, want %q", tt.parent, tt.child, got, tt.uncovered)
			}
		})
	}
}
