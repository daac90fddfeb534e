package issuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/kavachgate/kavach/issuer/idp"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/token"
)

// registration is the part of an RFC 7591 §2 client metadata request we
// act on. RFC 7591 §2: metadata the server does not understand is
// ignored, so the decoder accepts unknown fields.
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name"`
}

// registered is the RFC 7591 §3.2.1 response: the client id and the
// metadata as registered (which may differ from the request's).
type registered struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientName              string   `json:"client_name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
}

func errClientMetadata(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_client_metadata", desc}
}

func errRedirectURI(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_redirect_uri", desc}
}

// serveRegister is RFC 7591 dynamic client registration, for public
// clients only (DESIGN.md §7): no secret is issued, the client proves
// itself with PKCE. Redirect URIs must be https or loopback http.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeOAuthError(w, &oauthError{http.StatusMethodNotAllowed, "invalid_request", "use POST"})
		return
	}
	in, err := readRegistration(w, r)
	if err != nil {
		s.writeOAuthError(w, err)
		return
	}
	out, err := in.validate(s.login.jag != nil)
	if err != nil {
		s.writeOAuthError(w, err)
		return
	}
	at := now()
	c := &store.Client{
		ID: token.NewID(token.PrefixClient), Name: out.ClientName, Kind: store.ClientPublic,
		RedirectURIs: out.RedirectURIs, CreatedAt: at,
	}
	if err := s.store.CreateClient(r.Context(), c); err != nil {
		s.writeOAuthError(w, err)
		return
	}
	out.ClientID = c.ID
	out.ClientIDIssuedAt = at.Unix()
	writeJSON(w, http.StatusCreated, out)
}

// readRegistration reads the JSON body: at most maxJSONBody bytes
// (413 beyond), one object.
func readRegistration(w http.ResponseWriter, r *http.Request) (*registration, error) {
	body, err := readBody(w, r, "application/json", maxJSONBody)
	if err != nil {
		return nil, err
	}
	var in registration
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		return nil, errClientMetadata("the body is not a JSON object of client metadata")
	}
	if dec.More() {
		return nil, errClientMetadata("data after the JSON object")
	}
	return &in, nil
}

// validate checks the metadata and returns what will be registered.
// validate checks a registration; jwtBearer: the issuer accepts ID-JAGs,
// so a client may register the jwt-bearer grant too.
func (in *registration) validate(jwtBearer bool) (*registered, error) {
	// RFC 7591 §2 defaults token_endpoint_auth_method to
	// client_secret_basic; we register public clients only, so an absent
	// method is registered (and answered, §3.2.1) as "none".
	switch in.TokenEndpointAuthMethod {
	case "", "none":
	default:
		return nil, errClientMetadata("only public clients can register: token_endpoint_auth_method must be none")
	}
	if err := checkGrantAndResponseTypes(in.GrantTypes, in.ResponseTypes, jwtBearer); err != nil {
		return nil, errClientMetadata(err.Error())
	}
	if len(in.RedirectURIs) == 0 {
		return nil, errRedirectURI("redirect_uris is required")
	}
	if len(in.RedirectURIs) > maxRedirectURIs {
		return nil, errRedirectURI("too many redirect_uris")
	}
	for _, ru := range in.RedirectURIs {
		if len(ru) > maxRedirectURILen {
			return nil, errRedirectURI("a redirect_uri is too long")
		}
		if err := checkRedirectURI(ru); err != nil {
			return nil, errRedirectURI(err.Error())
		}
		// DESIGN.md §7: open registration takes https or loopback http
		// only; a private-use scheme names no owner anyone checked.
		if u, _ := url.Parse(ru); u.Scheme != "https" && u.Scheme != "http" {
			return nil, errRedirectURI("registered redirect URIs must be https or loopback http")
		}
	}
	name, err := checkClientName(in.ClientName)
	if err != nil {
		return nil, errClientMetadata(err.Error())
	}
	out := &registered{
		ClientName:              name,
		RedirectURIs:            dedupe(in.RedirectURIs),
		TokenEndpointAuthMethod: "none",
		GrantTypes:              dedupe(in.GrantTypes),
		ResponseTypes:           []string{"code"},
	}
	if len(out.GrantTypes) == 0 {
		out.GrantTypes = []string{"authorization_code"}
	}
	return out, nil
}

// checkGrantAndResponseTypes accepts what a public client of the code
// flow may use (RFC 7591 §2.1): grant types authorization_code (required)
// and refresh_token (and jwt-bearer, for ID-JAGs, when jwtBearer),
// response type code. Empty lists take RFC 7591's defaults
// (authorization_code; code).
func checkGrantAndResponseTypes(grants, responses []string, jwtBearer bool) error {
	for _, g := range grants {
		if g != "authorization_code" && g != "refresh_token" && (!jwtBearer || g != idp.GrantTypeJWTBearer) {
			return errors.New("grant_types: only authorization_code and refresh_token are supported for public clients")
		}
	}
	if len(grants) > 0 && !slices.Contains(grants, "authorization_code") {
		return errors.New("grant_types must include authorization_code")
	}
	for _, rt := range responses {
		if rt != "code" {
			return errors.New("response_types: only code is supported")
		}
	}
	return nil
}

// checkClientName accepts a display name: valid UTF-8 without control
// characters, at most maxClientNameLen bytes. It is shown on the consent
// page (HTML-escaped there), so it is plain text.
func checkClientName(name string) (string, error) {
	if len(name) > maxClientNameLen {
		return "", errors.New("client_name is too long")
	}
	if !utf8.ValidString(name) {
		return "", errors.New("client_name is not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", errors.New("client_name has control or formatting characters")
		}
	}
	return name, nil
}

// dedupe returns list without repeats, in first-seen order.
func dedupe(list []string) []string {
	var out []string
	for _, v := range list {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
