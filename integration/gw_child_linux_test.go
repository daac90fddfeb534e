package integration

import (
	"os/exec"
	"syscall"
)

// setChildAttrs makes the kernel kill a gateway child if the test process
// dies first (a panic or a -timeout), so no `kavach run` outlives the test.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
