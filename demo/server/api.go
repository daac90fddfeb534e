package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// newAPI is the small REST API the gateway protects under /api/:
//
//	GET  /api/repos/demo/pulls/1/diff      pullrequest:read
//	GET  /api/repos/demo/files             repository:read (the list)
//	GET  /api/repos/demo/files/{path…}     repository:read
//	PUT  /api/repos/demo/files/{path…}     repository:write (body = content)
//	GET  /api/repos/demo/comments          pullrequest:read
//	POST /api/repos/demo/comments          comment:write ({"body","path","line"})
//
// Every answer is JSON and names the caller from the Kavach headers.
func newAPI(repo *Repo, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	const base = "/api/repos/" + repoName
	reply := func(w http.ResponseWriter, r *http.Request, status int, v map[string]any) {
		c := callerFrom(r.Header)
		v["called_by"] = c
		log.Info("api", "method", r.Method, "path", r.URL.Path, "status", status, "caller", c.Summary)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, errNotFound):
			status = http.StatusNotFound
		case errors.Is(err, errTooLarge):
			status = http.StatusRequestEntityTooLarge
		case errors.Is(err, errFull):
			status = http.StatusInsufficientStorage
		}
		reply(w, r, status, map[string]any{"error": err.Error()})
	}

	mux.HandleFunc("GET "+base+"/pulls/1/diff", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, http.StatusOK, map[string]any{"repo": repoName, "pr": prNumber, "title": prTitle, "diff": prDiff})
	})
	mux.HandleFunc("GET "+base+"/files", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, http.StatusOK, map[string]any{"repo": repoName, "files": repo.Files()})
	})
	mux.HandleFunc("GET "+base+"/files/{path...}", func(w http.ResponseWriter, r *http.Request) {
		p, content, err := repo.Read(r.PathValue("path"))
		if err != nil {
			fail(w, r, err)
			return
		}
		reply(w, r, http.StatusOK, map[string]any{"repo": repoName, "path": p, "content": content})
	})
	mux.HandleFunc("PUT "+base+"/files/{path...}", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFileSize+1))
		if err != nil || len(data) > maxFileSize {
			fail(w, r, errTooLarge)
			return
		}
		p, existed, err := repo.Write(r.PathValue("path"), string(data))
		if err != nil {
			fail(w, r, err)
			return
		}
		status := http.StatusOK
		if !existed {
			status = http.StatusCreated
		}
		reply(w, r, status, map[string]any{"repo": repoName, "path": p, "bytes": len(data)})
	})
	mux.HandleFunc("GET "+base+"/comments", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, http.StatusOK, map[string]any{"repo": repoName, "pr": prNumber, "comments": repo.Comments()})
	})
	mux.HandleFunc("POST "+base+"/comments", func(w http.ResponseWriter, r *http.Request) {
		var in postCommentIn
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2*maxCommentLen))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			fail(w, r, errors.New("want a JSON body {\"body\": \"…\", \"path\": \"…\", \"line\": 1}"))
			return
		}
		cm, err := repo.AddComment(Comment{Body: in.Body, Path: in.Path, Line: in.Line, Author: callerFrom(r.Header)})
		if err != nil {
			fail(w, r, err)
			return
		}
		reply(w, r, http.StatusCreated, map[string]any{"repo": repoName, "pr": prNumber, "comment": cm})
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, base+"/") || r.URL.Path == base {
			reply(w, r, http.StatusNotFound, map[string]any{"error": "no such endpoint (or method)"})
			return
		}
		reply(w, r, http.StatusNotFound, map[string]any{"error": "the demo has one repository: " + base})
	})
	return mux
}
