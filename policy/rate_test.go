package policy

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestAttenuateRate: a child's rate narrows its parent's in count (what
// passes at once) and in refill; absent, it inherits; a parent without one
// lets the child choose.
func TestAttenuateRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		parent, req, want RateLimit
		refused           bool
	}{
		{parent: "60/m", req: "", want: "60/m"},
		{parent: "60/m", req: "10/m", want: "10/m"},
		{parent: "60/m", req: "60/m", want: "60/m"},
		{parent: "60/m", req: "1/s", want: "1/s"},      // same refill, smaller burst
		{parent: "60/m", req: "61/m", refused: true},   // more at once and faster
		{parent: "60/m", req: "3600/h", refused: true}, // same refill, burst 3600
		{parent: "60/m", req: "2/s", refused: true},    // faster refill
		{parent: "10/h", req: "10/m", refused: true},   // same burst, faster refill
		{parent: "", req: "1000/h", want: "1000/h"},    // no limit above: any
		{parent: "60/m", req: "0/m", refused: true},    // invalid
		{parent: "60/m", req: "60/d", refused: true},   // invalid
	} {
		p := parentRights()
		p.Constraints.Rate = tc.parent
		child, err := Attenuate(p, Request{Constraints: Constraints{Rate: tc.req}})
		var fe *FieldError
		switch {
		case tc.refused && (err == nil || !errors.As(err, &fe) || fe.Field != "rate"):
			t.Errorf("parent %q, child %q: %v, want a rate error", tc.parent, tc.req, err)
		case !tc.refused && (err != nil || child.Constraints.Rate != tc.want):
			t.Errorf("parent %q, child %q: %q, %v; want %q", tc.parent, tc.req, child.Constraints.Rate, err, tc.want)
		}
	}
	// Within refuses an absent rate under a parent's (no rate is no limit).
	if fe := (&Constraints{}).Within(&Constraints{Rate: "5/m"}); fe == nil || fe.Field != "rate" {
		t.Fatalf("absent rate within 5/m: %v", fe)
	}
}

func TestConstraintsJSONRate(t *testing.T) {
	t.Parallel()
	var c Constraints
	if err := json.Unmarshal([]byte(`{"max_body":10,"rate":"60/m"}`), &c); err != nil || c.Rate != "60/m" {
		t.Fatalf("%+v %v", c, err)
	}
	b, err := json.Marshal(c)
	if err != nil || string(b) != `{"max_body":10,"rate":"60/m"}` {
		t.Fatalf("%s %v", b, err)
	}
	for _, in := range []string{`{"rate":""}`, `{"rate":null}`, `{"rate":"0/m"}`, `{"rate":"5/d"}`, `{"rate":5}`, `{"rate":"5/m","rate":"5/m"}`, `{"Rate":"5/m"}`} {
		var c Constraints
		if err := json.Unmarshal([]byte(in), &c); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}
