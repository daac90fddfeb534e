package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kavachgate/kavach/audit"
)

// configTrail reads the audit option of a config (JSON when the name ends
// in .json, else through Env.Adapt) as the gateway would resolve it: the
// trail and, when the config names one, the key's .pub. Relative paths
// are taken from the working directory, as the gateway does.
func (e *Env) configTrail(file string) (trailTarget, error) {
	body, err := os.ReadFile(file)
	if err != nil {
		return trailTarget{}, fmt.Errorf("--config: %w", err)
	}
	if !strings.HasSuffix(file, ".json") {
		if e.Adapt == nil {
			return trailTarget{}, errors.New("--config: this program reads JSON configs only")
		}
		if body, err = e.Adapt(body, file); err != nil {
			return trailTarget{}, fmt.Errorf("--config %s: %w", file, err)
		}
	}
	var cfg struct {
		Apps struct {
			Kavach *struct {
				Audit *audit.Config `json:"audit"`
			} `json:"kavach"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		return trailTarget{}, fmt.Errorf("--config %s: %w", file, err)
	}
	if cfg.Apps.Kavach == nil {
		return trailTarget{}, fmt.Errorf("--config %s: no kavach app (global option kavach { … })", file)
	}
	t, err := e.trailOf(cfg.Apps.Kavach.Audit)
	if err != nil {
		return t, fmt.Errorf("--config %s: %w", file, err)
	}
	return t, nil
}

// trailOf is where c writes: files or one database URL, and the key's .pub
// when c names the key.
func (e *Env) trailOf(c *audit.Config) (trailTarget, error) {
	if c == nil || (c.Sink == audit.SinkFile && c.Path == "") {
		return trailTarget{paths: []string{e.DefaultTrailDir()}}, nil
	}
	if err := c.Validate(); err != nil {
		return trailTarget{}, err
	}
	c.Resolve, c.DataDir = e.Resolve, filepath.Join(e.DataDir, "kavach")
	var t trailTarget
	switch c.Sink {
	case audit.SinkPostgres, audit.SinkFile:
		rc, err := c.Resolved()
		if err != nil {
			return t, err
		}
		t.paths = []string{rc.Path}
		if c.Sink == audit.SinkPostgres {
			t.paths = []string{rc.URL}
		}
		if c.Key != "" || c.Sink == audit.SinkPostgres {
			_, t.pub = audit.KeyPaths(rc.KeyTrail())
		}
	default:
		return t, fmt.Errorf("the trail goes to %s: nothing here to verify", c.Sink)
	}
	return t, nil
}
