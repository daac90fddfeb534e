package issuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
)

// adminRoutes is the agent admin API (DESIGN.md §7), JSON in and out, in
// the types of package admin. The Kavach admin listener authenticates
// every request before it gets here. A handler only decodes, calls the
// operation of manage.go that holds the rules, and answers.
func (s *Server) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/users", s.adminCreateUser)
	mux.HandleFunc("GET /v1/users", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.listUsers(r.Context())
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("GET /v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.getUser(r.Context(), r.PathValue("id"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("PUT /v1/users/{id}/entitlements", s.adminSetEntitlements)
	mux.HandleFunc("POST /v1/users/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.revokeUser(r.Context(), r.PathValue("id"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("GET /v1/users/{id}/consents", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.listConsents(r.Context(), r.PathValue("id"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("POST /v1/users/{id}/consents/{grant}/revoke", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.revokeConsent(r.Context(), r.PathValue("id"), r.PathValue("grant"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("POST /v1/agents", s.adminCreateAgent)
	mux.HandleFunc("GET /v1/agents", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.listAgents(r.Context(), r.URL.Query().Get("owner"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("GET /v1/agents/{id}", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.getAgent(r.Context(), r.PathValue("id"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("POST /v1/agents/{id}/children", s.adminCreateChild)
	mux.HandleFunc("POST /v1/agents/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.revokeAgent(r.Context(), r.PathValue("id"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("POST /v1/agents/{id}/rotate", s.adminRotateAgent)
	mux.HandleFunc("POST /v1/clients", s.adminCreateClient)
	mux.HandleFunc("POST /v1/clients/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		// A metadata document URL comes URL-encoded into the segment
		// (https%3A%2F%2Ftools.example%2Fclient.json).
		out, err := s.revokeClient(r.Context(), r.PathValue("id"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("PUT /v1/clients/{id}/resources", s.adminSetClientResources)
	mux.HandleFunc("POST /v1/clients/revoke", s.adminRevokeClients)
	mux.HandleFunc("POST /v1/keys/rotate", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.rotateKeys(r.Context())
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("POST /v1/keys/{kid}/revoke", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.revokeKey(r.Context(), r.PathValue("kid"))
		s.answer(w, http.StatusOK, out, err)
	})
	mux.HandleFunc("POST /v1/reseed", func(w http.ResponseWriter, r *http.Request) {
		// After Redis lost its data: every live revocation of the store
		// back into the gateways' set.
		n, err := s.Reseed(r.Context())
		s.answer(w, http.StatusOK, &admin.Reseeded{Entries: n}, err)
	})
	return mux
}

// answer writes out with status, or the error err maps to.
func (s *Server) answer(w http.ResponseWriter, status int, out any, err error) {
	if err != nil {
		s.adminError(w, err)
		return
	}
	writeJSON(w, status, out)
}

// adminError answers err in the admin listener's one error shape,
// *admin.Error (RFC 6749 §5.2's {"error","error_description"}). The
// detail of an unexpected error goes to the log, never to the client.
func (s *Server) adminError(w http.ResponseWriter, err error) {
	var ae *admin.Error
	var fe *policy.FieldError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &fe):
		code := "invalid_scope"
		if fe.Field == "aud" {
			code = "invalid_target"
		}
		ae = &admin.Error{Status: http.StatusBadRequest, Code: code, Description: fe.Error()}
	case errors.Is(err, store.ErrNotFound):
		ae = &admin.Error{Status: http.StatusNotFound, Code: "not_found", Description: "not found"}
	case errors.Is(err, store.ErrExists):
		ae = &admin.Error{Status: http.StatusConflict, Code: "conflict", Description: "already exists"}
	case errors.Is(err, store.ErrInactive):
		ae = &admin.Error{Status: http.StatusConflict, Code: "inactive", Description: "the parent, owner or chain is revoked or expired"}
	default:
		s.log.Error("issuer: admin request failed", "error", err)
		ae = &admin.Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"}
	}
	writeJSON(w, ae.Status, ae)
}

// readJSON decodes a JSON body strictly: at most maxJSONBody bytes, no
// unknown fields, nothing after the value.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &admin.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Description: fmt.Sprintf("body larger than %d bytes", maxJSONBody)}
		}
		return badRequest("could not read the body")
	}
	if err := checkMembers(body, v); err != nil {
		return badRequest("body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	if dec.More() {
		return badRequest("body: data after the JSON value")
	}
	return nil
}

// checkMembers closes the gaps encoding/json leaves in a top-level
// object: a repeated member (the last would silently win) and a member
// whose case differs from the field's name (matched case-insensitively)
// are errors. For a struct, member names must be its json names exactly.
func checkMembers(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil // not an object: the decoder reports what is wrong
	}
	var names map[string]bool
	if rt := reflect.TypeOf(v); rt.Kind() == reflect.Pointer && rt.Elem().Kind() == reflect.Struct {
		names = map[string]bool{}
		for f := range rt.Elem().Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				names[name] = true
			}
		}
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := t.(string)
		if seen[strings.ToLower(key)] {
			return fmt.Errorf("member %s is repeated", quote(key))
		}
		seen[strings.ToLower(key)] = true
		if names != nil && !names[key] {
			return fmt.Errorf("unknown member %s", quote(key))
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

func (s *Server) adminCreateUser(w http.ResponseWriter, r *http.Request) {
	var in admin.UserCreate
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	out, err := s.createUser(r.Context(), &in)
	s.answer(w, http.StatusCreated, out, err)
}

func (s *Server) adminSetEntitlements(w http.ResponseWriter, r *http.Request) {
	var ent admin.Entitlements
	if err := readJSON(w, r, &ent); err != nil {
		s.adminError(w, err)
		return
	}
	out, err := s.setEntitlements(r.Context(), r.PathValue("id"), ent)
	s.answer(w, http.StatusOK, out, err)
}

func (s *Server) adminCreateAgent(w http.ResponseWriter, r *http.Request) {
	var in admin.AgentCreate
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	out, err := s.createAgent(r.Context(), &in)
	s.answer(w, http.StatusCreated, out, err)
}

func (s *Server) adminCreateChild(w http.ResponseWriter, r *http.Request) {
	var in admin.AgentCreate
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	out, err := s.createChild(r.Context(), r.PathValue("id"), &in)
	s.answer(w, http.StatusCreated, out, err)
}

// adminRotateAgent takes no body (a new secret) or admin.AgentRotate.
func (s *Server) adminRotateAgent(w http.ResponseWriter, r *http.Request) {
	var in admin.AgentRotate
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &in); err != nil {
			s.adminError(w, err)
			return
		}
	}
	out, err := s.rotateAgent(r.Context(), r.PathValue("id"), in.PublicKey)
	s.answer(w, http.StatusOK, out, err)
}

func (s *Server) adminCreateClient(w http.ResponseWriter, r *http.Request) {
	var in admin.ClientCreate
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	out, err := s.createClient(r.Context(), &in)
	s.answer(w, http.StatusCreated, out, err)
}

func (s *Server) adminSetClientResources(w http.ResponseWriter, r *http.Request) {
	var in admin.ClientResourcesUpdate
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	out, err := s.setClientResources(r.Context(), r.PathValue("id"), in.Resources)
	s.answer(w, http.StatusOK, out, err)
}

func (s *Server) adminRevokeClients(w http.ResponseWriter, r *http.Request) {
	var in admin.ClientsRevoke
	if err := readJSON(w, r, &in); err != nil {
		s.adminError(w, err)
		return
	}
	out, err := s.revokeClients(r.Context(), &in)
	s.answer(w, http.StatusOK, out, err)
}
