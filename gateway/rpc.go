package gateway

import (
	"errors"
	"strconv"

	"github.com/kavachgate/kavach/mcp"
)

// JSON-RPC error codes of MCP denials. TEMPORARY until mcp exports them.
const (
	rpcInvalidRequest  = -32600
	rpcMethodNotFound  = -32601
	rpcInternal        = -32603
	rpcSessionNotFound = -32001
	rpcForbidden       = -32003
	rpcHeaderMismatch  = -32020
)

func rpcCodeOf(err error) int {
	if errors.Is(err, mcp.ErrHeaderMismatch) {
		return rpcHeaderMismatch
	}
	return rpcInvalidRequest
}

func rpcErrorBody(id mcp.ID, code int, msg string) []byte {
	ids := id.String()
	if ids == "" {
		ids = "null"
	}
	return []byte(`{"jsonrpc":"2.0","id":` + ids + `,"error":{"code":` + strconv.Itoa(code) + `,"message":` + strconv.Quote(msg) + `}}`)
}
