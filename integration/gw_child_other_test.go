//go:build !linux

package integration

import "os/exec"

// setChildAttrs has nothing to add outside Linux; t.Cleanup kills the child.
func setChildAttrs(*exec.Cmd) {}
