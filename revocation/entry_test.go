package revocation

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	later := t0.Add(time.Hour)
	tests := []struct {
		name  string
		e     Entry
		field string // "" = valid
	}{
		{"id", Entry{ID: "agt_x", Until: later}, ""},
		{"sub cutoff", Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: t0, Until: later}, ""},
		{"client_id cutoff", Entry{ID: "https://app.example/cimd.json", Cutoff: CutoffClient, Before: t0, Until: later}, ""},
		{"kid cutoff", Entry{ID: "k1", Cutoff: CutoffKey, Before: t0, Until: later}, ""},
		{"longest id", Entry{ID: strings.Repeat("a", MaxIDLen), Until: later}, ""},
		{"punctuation", Entry{ID: "!#$%&'()*+-./:;<=>?@[]^_`{|}~", Until: later}, ""},

		{"empty id", Entry{Until: later}, "id"},
		{"id too long", Entry{ID: strings.Repeat("a", MaxIDLen+1), Until: later}, "id"},
		{"space", Entry{ID: "agt x", Until: later}, "id"},
		{"quote", Entry{ID: `agt"x`, Until: later}, "id"},
		{"backslash", Entry{ID: `agt\x`, Until: later}, "id"},
		{"comma", Entry{ID: "agt_a,agt_b", Until: later}, "id"},
		{"tab", Entry{ID: "agt\tx", Until: later}, "id"},
		{"newline", Entry{ID: "agt_x\n", Until: later}, "id"},
		{"DEL", Entry{ID: "agt\x7f", Until: later}, "id"},
		{"non-ASCII", Entry{ID: "agt_é", Until: later}, "id"},
		{"unknown cutoff", Entry{ID: "usr_a", Cutoff: "aud", Before: t0, Until: later}, "cutoff"},
		{"cutoff case", Entry{ID: "usr_a", Cutoff: "SUB", Before: t0, Until: later}, "cutoff"},
		{"cutoff without before", Entry{ID: "usr_a", Cutoff: CutoffSubject, Until: later}, "before"},
		{"before without cutoff", Entry{ID: "usr_a", Before: t0, Until: later}, "before"},
		{"no until", Entry{ID: "agt_x"}, "until"},
		{"cutoff without until", Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: t0}, "until"},
		{"until equals before", Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: t0, Until: t0}, "until"},
		{"until before before", Entry{ID: "usr_a", Cutoff: CutoffSubject, Before: later, Until: t0}, "until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.e.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("Validate() = %v, want ErrInvalidEntry", err)
			}
			fe, ok := errors.AsType[*FieldError](err)
			if !ok || fe.Field != tt.field {
				t.Fatalf("Validate() = %#v, want a FieldError for %q", err, tt.field)
			}
			if tt.e.ID != "" && strings.Contains(fe.Reason, tt.e.ID) {
				t.Errorf("reason %q echoes the id", fe.Reason)
			}
		})
	}
}

func TestDefaultUntil(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		life, leeway time.Duration
		want         time.Time
	}{
		{time.Hour, 30 * time.Second, now.Add(time.Hour + time.Minute)},
		{5 * time.Minute, 0, now.Add(5 * time.Minute)},
		{0, 10 * time.Second, now.Add(20 * time.Second)},
	}
	for _, tt := range tests {
		if got := DefaultUntil(now, tt.life, tt.leeway); !got.Equal(tt.want) {
			t.Errorf("DefaultUntil(now, %v, %v) = %v, want %v", tt.life, tt.leeway, got, tt.want)
		}
	}
}
