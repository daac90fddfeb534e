package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The scope the Kavach gateway requires for each tool (Caddyfile.example:
// `tool read_diff pullrequest:read` …). The server itself checks nothing:
// that is the gateway's job, with no code here.
var toolScopes = map[string]string{
	"read_diff":    "pullrequest:read",
	"read_file":    "repository:read",
	"write_file":   "repository:write",
	"post_comment": "comment:write",
}

type readDiffIn struct {
	PR int `json:"pr,omitempty" jsonschema:"pull request number (the demo has only #1, the default)"`
}

type readDiffOut struct {
	Repo     string `json:"repo"`
	PR       int    `json:"pr"`
	Title    string `json:"title"`
	Diff     string `json:"diff"`
	CalledBy Caller `json:"called_by"`
}

type readFileIn struct {
	Path string `json:"path" jsonschema:"file path in the repository, e.g. ratelimit/bucket.go"`
}

type fileOut struct {
	Repo     string   `json:"repo"`
	Path     string   `json:"path"`
	Content  string   `json:"content,omitempty"`
	Bytes    int      `json:"bytes"`
	Created  bool     `json:"created,omitempty"`
	Files    []string `json:"files,omitempty"`
	CalledBy Caller   `json:"called_by"`
}

type writeFileIn struct {
	Path    string `json:"path" jsonschema:"file path in the repository"`
	Content string `json:"content" jsonschema:"the file's new content"`
}

type postCommentIn struct {
	Body string `json:"body" jsonschema:"the review comment (Markdown)"`
	Path string `json:"path,omitempty" jsonschema:"file the comment is about (optional)"`
	Line int    `json:"line,omitempty" jsonschema:"line the comment is about (optional)"`
}

type commentOut struct {
	Repo     string  `json:"repo"`
	PR       int     `json:"pr"`
	Comment  Comment `json:"comment"`
	Total    int     `json:"total_comments"`
	CalledBy Caller  `json:"called_by"`
}

func boolPtr(b bool) *bool { return &b }

// newMCPServer is the code-review MCP server of DESIGN.md §10.
func newMCPServer(repo *Repo, log *slog.Logger) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "kavach-demo-code-review", Title: "Kavach demo: code review", Version: "1.0.0"},
		&mcp.ServerOptions{Instructions: "A small code-review server for the Kavach demo: one repository (" + repoName +
			") with one pull request (#1). Every answer says who called, as the Kavach gateway vouched for it."})

	caller := func(req *mcp.CallToolRequest, tool string) Caller {
		var c Caller
		if req.Extra != nil {
			c = callerFrom(req.Extra.Header)
		} else {
			c = callerFrom(nil)
		}
		log.Info("tools/call", "tool", tool, "caller", c.Summary, "scope", c.Scope)
		return c
	}
	describe := func(tool, what string) string {
		return what + " Kavach scope: " + toolScopes[tool] + "."
	}

	mcp.AddTool(s, &mcp.Tool{
		Name: "read_diff", Title: "Read the pull request's diff",
		Description: describe("read_diff", "Returns the unified diff of pull request #1 of the demo repository."),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: boolPtr(false)},
		Meta:        mcp.Meta{"kavach/scope": toolScopes["read_diff"]},
	}, func(_ context.Context, req *mcp.CallToolRequest, in readDiffIn) (*mcp.CallToolResult, readDiffOut, error) {
		c := caller(req, "read_diff")
		if in.PR != 0 && in.PR != prNumber {
			return nil, readDiffOut{}, fmt.Errorf("no pull request #%d (the demo has only #%d)", in.PR, prNumber)
		}
		out := readDiffOut{Repo: repoName, PR: prNumber, Title: prTitle, Diff: prDiff, CalledBy: c}
		return text(fmt.Sprintf("PR #%d: %s\n\n%s\ncalled by %s", prNumber, prTitle, prDiff, c.Summary)), out, nil
	})

	mcp.AddTool(s, &mcp.Tool{
		Name: "read_file", Title: "Read a file",
		Description: describe("read_file", "Returns a file of the demo repository at the pull request's head."),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: boolPtr(false)},
		Meta:        mcp.Meta{"kavach/scope": toolScopes["read_file"]},
	}, func(_ context.Context, req *mcp.CallToolRequest, in readFileIn) (*mcp.CallToolResult, fileOut, error) {
		c := caller(req, "read_file")
		p, content, err := repo.Read(in.Path)
		if err != nil {
			return nil, fileOut{}, fmt.Errorf("%s: %w (files: %v)", in.Path, err, repo.Files())
		}
		out := fileOut{Repo: repoName, Path: p, Content: content, Bytes: len(content), CalledBy: c}
		return text(fmt.Sprintf("%s:\n\n%s\ncalled by %s", p, content, c.Summary)), out, nil
	})

	mcp.AddTool(s, &mcp.Tool{
		Name: "write_file", Title: "Write a file",
		Description: describe("write_file", "Creates or replaces a file of the demo repository."),
		Annotations: &mcp.ToolAnnotations{DestructiveHint: boolPtr(true), OpenWorldHint: boolPtr(false)},
		Meta:        mcp.Meta{"kavach/scope": toolScopes["write_file"]},
	}, func(_ context.Context, req *mcp.CallToolRequest, in writeFileIn) (*mcp.CallToolResult, fileOut, error) {
		c := caller(req, "write_file")
		p, existed, err := repo.Write(in.Path, in.Content)
		if err != nil {
			return nil, fileOut{}, fmt.Errorf("%s: %w", in.Path, err)
		}
		verb := "replaced"
		if !existed {
			verb = "created"
		}
		out := fileOut{Repo: repoName, Path: p, Bytes: len(in.Content), Created: !existed, CalledBy: c}
		return text(fmt.Sprintf("%s %s (%d bytes)\ncalled by %s", verb, p, len(in.Content), c.Summary)), out, nil
	})

	mcp.AddTool(s, &mcp.Tool{
		Name: "post_comment", Title: "Comment on the pull request",
		Description: describe("post_comment", "Posts a review comment on pull request #1."),
		Annotations: &mcp.ToolAnnotations{DestructiveHint: boolPtr(false), OpenWorldHint: boolPtr(false)},
		Meta:        mcp.Meta{"kavach/scope": toolScopes["post_comment"]},
	}, func(_ context.Context, req *mcp.CallToolRequest, in postCommentIn) (*mcp.CallToolResult, commentOut, error) {
		c := caller(req, "post_comment")
		cm, err := repo.AddComment(Comment{Body: in.Body, Path: in.Path, Line: in.Line, Author: c})
		if err != nil {
			return nil, commentOut{}, err
		}
		out := commentOut{Repo: repoName, PR: prNumber, Comment: cm, Total: len(repo.Comments()), CalledBy: c}
		return text(fmt.Sprintf("comment #%d posted on PR #%d\ncalled by %s", cm.ID, prNumber, c.Summary)), out, nil
	})
	return s
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// newMCPHandler serves the MCP server over the streamable HTTP transport:
// stateful (Mcp-Session-Id) unless stateless, JSON answers unless sse.
func newMCPHandler(s *mcp.Server, stateless, sse bool) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{Stateless: stateless, JSONResponse: !sse})
}
