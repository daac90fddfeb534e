package token

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jws"
)

// FuzzVerify: Verify never panics, and a valid token with any one byte
// changed never verifies.
func FuzzVerify(f *testing.F) {
	k := testKey(f)
	good := mint(f, k, goldenClaims())
	f.Add(good, uint16(0), byte('B'))
	f.Add(good, uint16(len(good)-1), byte('B'))
	f.Add(good, uint16(len(good)/2), byte('.'))
	f.Add("", uint16(0), byte(0))
	f.Add("a.b.c", uint16(1), byte('='))
	v := testVerifier(f)
	f.Fuzz(func(t *testing.T, tok string, pos uint16, b byte) {
		// Any input: no panic, and success only for a genuine token.
		got, err := v.Verify(tok)
		if err == nil {
			// jwx's complete JWS verification agrees with ours.
			if _, jErr := jws.Verify([]byte(tok), jws.WithKey(k.Alg, k.private.Public())); jErr != nil {
				t.Fatalf("accepted a token jws.Verify refuses (%v): %q", jErr, tok)
			}
		}
		if err == nil && tok != good {
			// The only key is ours and Mint is deterministic, so an
			// accepted token must be one we could have minted.
			if again, mErr := Mint(k, &got.Claims); mErr != nil || again != tok {
				t.Fatalf("accepted a token Mint would not produce: %q", tok)
			}
		}
		// The good token with one byte changed.
		i := int(pos) % len(good)
		if good[i] == b {
			return
		}
		mutated := good[:i] + string([]byte{b}) + good[i+1:]
		if _, err := v.Verify(mutated); err == nil {
			t.Fatalf("token with byte %d changed to %q verified", i, b)
		}
	})
}

// FuzzDecodeClaims: the strict claims reader never panics, and whatever it
// accepts encoding/json decodes to the same Claims (it may refuse more:
// case variants, repeated members, null values).
func FuzzDecodeClaims(f *testing.F) {
	f.Add(mustJSON(f, goldenClaims()))
	f.Add(mustJSON(f, testClaims()))
	f.Add([]byte(`{"aud":"x","act":{"sub":"a","act":{"sub":"b"}},"x":[1,{"y":null}],"iat":-0}`))
	f.Add([]byte(`{"iss":"a\u00e9\ud83d\ude00","cnf":{"jkt":"x"},"kvc":{"v":1,"chain":[],"agents":["a"]}}`))
	f.Add([]byte(`{"ISS":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast Claims
		if decodeClaims(data, &fast) != nil {
			return
		}
		var std Claims
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("strict reader accepted what encoding/json refuses (%v): %q", err, data)
		}
		if !reflect.DeepEqual(normalize(fast), normalize(std)) {
			t.Fatalf("decoders disagree on %q:\nstrict %+v\nstd    %+v", data, fast, std)
		}
	})
}

// normalize maps the representations both decoders may choose for the same
// value (nil or empty slices) to one.
func normalize(c Claims) Claims {
	if len(c.Audience) == 0 {
		c.Audience = nil
	}
	if c.Kavach != nil {
		k := *c.Kavach
		if len(k.Chain) == 0 {
			k.Chain = nil
		}
		if len(k.Agents) == 0 {
			k.Agents = nil
		}
		c.Kavach = &k
	}
	return c
}

// FuzzDecodeHeader: the header reader never panics and agrees with
// encoding/json on what it accepts.
func FuzzDecodeHeader(f *testing.F) {
	f.Add([]byte(`{"alg":"EdDSA","kid":"k","typ":"at+jwt"}`))
	f.Add([]byte(`{"alg":"none","crit":["b64"],"b64":false,"jwk":{"kty":"OKP"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeHeader(data)
		if err != nil {
			return
		}
		var std struct {
			Alg  string `json:"alg"`
			Kid  string `json:"kid"`
			Typ  string `json:"typ"`
			Crit any    `json:"crit"`
			B64  any    `json:"b64"`
		}
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("header reader accepted what encoding/json refuses (%v): %q", err, data)
		}
		if h.alg != std.Alg || h.kid != std.Kid || h.typ != std.Typ {
			t.Fatalf("decoders disagree on %q: %+v vs %+v", data, h, std)
		}
	})
}
