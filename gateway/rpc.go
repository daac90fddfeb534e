package gateway

import "github.com/kavachgate/kavach/mcp"

// JSON-RPC error codes of the denials the pipeline decides itself (the
// codes of malformed messages come from mcp.ErrorCode).
const (
	rpcInvalidRequest  = mcp.CodeInvalidRequest
	rpcMethodNotFound  = mcp.CodeMethodNotFound
	rpcInternal        = mcp.CodeInternalError
	rpcSessionNotFound = mcp.CodeSessionNotFound
	rpcForbidden       = mcp.CodeAccessDenied
	rpcHeaderMismatch  = mcp.CodeHeaderMismatch
)

func rpcCodeOf(err error) int { return mcp.ErrorCode(err) }

func rpcErrorBody(id mcp.ID, code int, msg string) []byte { return mcp.ErrorBody(id, code, msg) }
