package policy

// Every limit of the policy formats, in one place. Raising one is a format
// change: tokens minted under a higher limit are rejected by older gateways.
const (
	MaxScopeLen          = 256 // bytes of one scope
	MaxScopeSegments     = 16
	MaxScopes            = 64 // scopes in one set
	MaxConstraintEntries = 64 // entries in one constraint list
	MaxDepth             = 16 // format limit of a delegation chain
	DefaultMaxDepth      = 5  // issuer default max_depth

	// RFC 1035 §2.3.4: a name is at most 255 octets on the wire, which is
	// 253 characters in dotted text form; a label is at most 63 octets.
	MaxHostLen  = 253
	MaxLabelLen = 63

	// MaxEntryLen bounds one method or path entry of a constraint list, so a
	// rejected entry can be echoed in an error without echoing a megabyte.
	MaxEntryLen = 1024

	// MaxArgNumber bounds an argument rule's range: every integer of
	// magnitude up to 2^53−1 is exactly a double (RFC 8259 §6), so a bound
	// means what it says.
	MaxArgNumber = 1<<53 - 1
	// MaxSchemeLen bounds a URL scheme in an argument rule.
	MaxSchemeLen = 32
)
