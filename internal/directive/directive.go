// Package directive lets a Caddy-free package read its own Caddyfile
// lines, so that a config's grammar lives beside the config it fills and
// the Caddy glue only registers it and passes the dispenser in.
//
// Reader is the part of *caddyfile.Dispenser such a parser uses; the
// Dispenser satisfies it as it is. An error made with Err or Errf names
// the file and line of the token the reader is at when it is made: an
// error about a line that is only known to be wrong later (a rule missing
// the line that would make it valid) is made while the reader is on that
// line and returned later.
package directive

import "strconv"

// Reader reads one directive or global option: its arguments, then the
// lines of its block.
type Reader interface {
	// Next moves to the next token, whatever it is.
	Next() bool
	// Val is the current token's text.
	Val() string
	// NextArg moves to the next argument on the current line.
	NextArg() bool
	// Args reads the next arguments on the line into targets; false when
	// there are fewer.
	Args(targets ...*string) bool
	// RemainingArgs reads the rest of the line.
	RemainingArgs() []string
	// NextBlock moves to the next line of the block opened at the given
	// nesting level; false at its end.
	NextBlock(nesting int) bool
	// Nesting is the current block depth.
	Nesting() int
	// Err and Errf are errors naming the current token's file and line.
	Err(msg string) error
	Errf(format string, args ...any) error
	// ArgErr is the error for a wrong number of arguments.
	ArgErr() error
}

// NoArgs refuses an argument after the current token.
func NoArgs(d Reader) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// OneArg reads the one argument of the current line into v.
func OneArg(d Reader, v *string) error {
	if !d.Args(v) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// PositiveInt reads `<option> <n>` into v: n at least 1, and at most max
// unless max is 0.
func PositiveInt(d Reader, v *int, max int) error {
	name := d.Val()
	var s string
	if err := OneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	switch {
	case max > 0 && (err != nil || n <= 0 || n > max):
		return d.Errf("%s: %q is not between 1 and %d", name, s, max)
	case err != nil || n <= 0:
		return d.Errf("%s: %q is not a positive number", name, s)
	}
	*v = n
	return nil
}
