package issuer

import (
	"net/http"
	"strings"

	"github.com/kavachgate/kavach/issuer/idp"
)

// Endpoint paths, below the issuer URL's path.
const (
	pathAuthorize  = "/oauth/authorize"
	pathLogin      = "/oauth/login"
	pathConsent    = "/oauth/consent"
	pathToken      = "/oauth/token"
	pathRegister   = "/oauth/register"
	pathRevoke     = "/oauth/revoke"
	pathIntrospect = "/oauth/introspect"
	pathJWKS       = "/oauth/jwks"
)

// routes maps the public endpoints. Every path is under the issuer's own
// path; the metadata document also at its RFC 8414 §3.1 (inserted)
// location.
//
// OpenID Discovery (/.well-known/openid-configuration) is not served: the
// issuer issues no ID token and has no userinfo endpoint, so an OpenID
// client that discovered it would fail at the token response. OAuth and
// MCP clients find RFC 8414 metadata first.
func (s *Server) routes() http.Handler {
	base := strings.TrimSuffix(s.iss.EscapedPath(), "/")
	mux := http.NewServeMux()
	meta := http.HandlerFunc(s.serveMetadata)
	mux.Handle("/.well-known/oauth-authorization-server"+base, meta)
	if base != "" {
		mux.Handle(base+"/.well-known/oauth-authorization-server", meta)
	}
	mux.HandleFunc(base+pathJWKS, s.serveJWKS)
	mux.HandleFunc(base+pathToken, s.serveToken)
	mux.HandleFunc(base+pathRevoke, s.serveRevoke)
	mux.HandleFunc(base+pathIntrospect, s.serveIntrospect)
	mux.HandleFunc(base+pathAuthorize, s.serveAuthorize)
	mux.HandleFunc(base+pathLogin, s.serveLogin)
	mux.HandleFunc(base+pathConsent, s.serveConsent)
	if len(s.login.providers) > 0 {
		mux.HandleFunc(base+pathIdPStart, s.serveIdPStart)
		mux.HandleFunc(base+pathIdPCallback, s.serveIdPCallback)
	}
	if !s.cfg.DisableRegistration {
		mux.HandleFunc(base+pathRegister, s.serveRegister)
	}
	s.consoleRoutes(mux, base)
	s.mux = mux
	return mux
}

// Handles reports whether r is for one of the issuer's endpoints (a site
// may serve other things beside the issuer).
func (s *Server) Handles(r *http.Request) bool {
	_, pattern := s.mux.Handler(r)
	return pattern != ""
}

// metadata is the RFC 8414 §2 document.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethods          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthSigningAlgs []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethods  []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthAlgs     []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseISSSupported bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	auth := []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
	m := metadata{
		Issuer:                            s.cfg.Issuer,
		AuthorizationEndpoint:             s.endpoint(pathAuthorize),
		TokenEndpoint:                     s.endpoint(pathToken),
		JWKSURI:                           s.endpoint(pathJWKS),
		RevocationEndpoint:                s.endpoint(pathRevoke),
		IntrospectionEndpoint:             s.endpoint(pathIntrospect),
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token", "client_credentials", grantTokenExchange},
		TokenEndpointAuthMethods:          auth,
		TokenEndpointAuthSigningAlgs:      assertionAlgs,
		RevocationEndpointAuthMethods:     auth,
		RevocationEndpointAuthSigningAlgs: assertionAlgs,
		// Agents introspect their own tokens with a secret or an
		// assertion; resource servers with a secret; the admin token as
		// a bearer.
		IntrospectionEndpointAuthMethods:  []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "bearer"},
		IntrospectionEndpointAuthAlgs:     assertionAlgs,
		CodeChallengeMethodsSupported:     []string{"S256"},
		AuthorizationResponseISSSupported: true,
		ClientIDMetadataDocumentSupported: true,
	}
	if !s.cfg.DisableRegistration {
		m.RegistrationEndpoint = s.endpoint(pathRegister)
	}
	if s.login.jag != nil {
		m.GrantTypesSupported = append(m.GrantTypesSupported, idp.GrantTypeJWTBearer)
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Access-Control-Allow-Origin", "*")
	// Short: gateways must see a rotated key within one refresh interval.
	h.Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(s.JWKS())
}
