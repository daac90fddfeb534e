package audit

// PostgresChainOrder is the query VerifyPostgres reads rows with, for the
// tests' ReadBack.
const PostgresChainOrder = postgresChainOrder
