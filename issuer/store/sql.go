package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kavachgate/kavach/revocation"
)

// sqlStore is the Store of both databases; dialect holds what differs.
type sqlStore struct {
	d *dialect
	w *sql.DB // writes and transactions
	r *sql.DB // reads outside transactions (w itself on PostgreSQL)
}

var _ Store = (*sqlStore)(nil)

// errZeroTime refuses a zero now where it would be stored as "never": a
// code consumed at the zero time would stay unused.
var errZeroTime = errors.New("store: now is the zero time")

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs queries written with ? placeholders in the store's dialect and
// maps constraint violations to the store's errors.
type conn struct {
	q querier
	d *dialect
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := c.q.ExecContext(ctx, c.d.rebind(query), args...)
	return res, c.d.mapErr(err)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := c.q.QueryContext(ctx, c.d.rebind(query), args...)
	return rows, c.d.mapErr(err)
}

func (c conn) row(ctx context.Context, query string, args ...any) *sql.Row {
	return c.q.QueryRowContext(ctx, c.d.rebind(query), args...)
}

func (s *sqlStore) reader() conn { return conn{s.r, s.d} }
func (s *sqlStore) writer() conn { return conn{s.w, s.d} }

// tx runs fn in a transaction, committed when fn returns nil.
func (s *sqlStore) tx(ctx context.Context, fn func(conn) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(conn{tx, s.d}); err != nil {
		tx.Rollback()
		return err
	}
	return s.d.mapErr(tx.Commit())
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// one scans the only row of a query, ErrNotFound when there is none.
func one[T any](row *sql.Row, scan func(scanner) (*T, error)) (*T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// all runs a query and scans every row.
func all[T any](ctx context.Context, c conn, scan func(scanner) (*T, error), query string, args ...any) ([]*T, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// exists reports ErrNotFound unless the query finds a row.
func exists(ctx context.Context, c conn, query string, args ...any) error {
	var found int
	err := c.row(ctx, query, args...).Scan(&found)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// expired: expiresAt is set and not after now (an expiry is exclusive).
func expired(expiresAt int64, now time.Time) bool {
	return expiresAt != 0 && expiresAt <= now.UnixMilli()
}

// byCreation orders lists oldest first, ties by id, the same on both
// databases (SQL ORDER BY on text would follow PostgreSQL's collation).
func byCreation(aTime, bTime time.Time, aID, bID string) int {
	return cmp.Or(aTime.Compare(bTime), strings.Compare(aID, bID))
}

func (s *sqlStore) Close() error {
	if s.r == s.w {
		return s.w.Close()
	}
	return errors.Join(s.r.Close(), s.w.Close())
}

// Users.

const userCols = `id, name, password_hash, entitlements, entitlements_source, entitlements_at, created_at, revoked_at`

func scanUser(sc scanner) (*User, error) {
	var u User
	var ent string
	var entAt, created, revoked int64
	if err := sc.Scan(&u.ID, &u.Name, &u.PasswordHash, &ent, &u.EntitlementsSource, &entAt, &created, &revoked); err != nil {
		return nil, err
	}
	var d decoder
	u.Entitlements = d.entitlements(ent)
	u.EntitlementsAt, u.CreatedAt, u.RevokedAt = fromMillis(entAt), fromMillis(created), fromMillis(revoked)
	return &u, d.err
}

func insertUser(ctx context.Context, c conn, u *User) error {
	_, err := c.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Name, u.PasswordHash, mapText(u.Entitlements), u.EntitlementsSource, millis(u.EntitlementsAt),
		millis(u.CreatedAt), millis(u.RevokedAt))
	return err
}

func (s *sqlStore) CreateUser(ctx context.Context, u *User) error {
	return insertUser(ctx, s.writer(), u)
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (*User, error) {
	return one(s.reader().row(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id), scanUser)
}

func (s *sqlStore) GetUserByName(ctx context.Context, name string) (*User, error) {
	return one(s.reader().row(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name), scanUser)
}

func (s *sqlStore) ListUsers(ctx context.Context) ([]*User, error) {
	users, err := all(ctx, s.reader(), scanUser, `SELECT `+userCols+` FROM users`)
	slices.SortFunc(users, func(a, b *User) int { return byCreation(a.CreatedAt, b.CreatedAt, a.ID, b.ID) })
	return users, err
}

func (s *sqlStore) SetEntitlements(ctx context.Context, id string, ent map[string][]string, at time.Time) error {
	return affected(s.writer().exec(ctx, `UPDATE users SET entitlements = ?, entitlements_source = ?, entitlements_at = ? WHERE id = ?`,
		mapText(ent), EntitlementsAdmin, millis(at), id))
}

func (s *sqlStore) SetPassword(ctx context.Context, id, passwordHash string) error {
	return affected(s.writer().exec(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, id))
}

// Users linked to an upstream OpenID provider.

const linkCols = `idp_issuer, subject, user_id, provider, email, name, groups, created_at, seen_at`

func scanLink(sc scanner) (*IdentityLink, error) {
	var l IdentityLink
	var groups string
	var created, seen int64
	if err := sc.Scan(&l.Issuer, &l.Subject, &l.User, &l.Provider, &l.Email, &l.Name, &groups, &created, &seen); err != nil {
		return nil, err
	}
	var d decoder
	l.Groups = d.list("groups", groups)
	l.CreatedAt, l.SeenAt = fromMillis(created), fromMillis(seen)
	return &l, d.err
}

func (s *sqlStore) SignInIdP(ctx context.Context, in *IdPSignIn) (*User, map[string][]string, error) {
	l := in.Link
	if l.SeenAt.IsZero() {
		return nil, nil, errZeroTime
	}
	if l.Issuer == "" || l.Subject == "" {
		return nil, nil, errors.New("store: an identity link needs an issuer and a subject")
	}
	var u *User
	var old map[string][]string
	err := s.tx(ctx, func(c conn) error {
		var userID string
		err := c.row(ctx, `SELECT user_id FROM idp_links WHERE idp_issuer = ? AND subject = ?`+c.d.forUpdate, l.Issuer, l.Subject).Scan(&userID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if in.NewUser == nil {
				return ErrNotFound
			}
			nu := *in.NewUser
			nu.Entitlements, nu.EntitlementsSource, nu.EntitlementsAt = in.Entitlements, EntitlementsIdP, l.SeenAt
			if err := insertUser(ctx, c, &nu); err != nil {
				return err
			}
			if _, err := c.exec(ctx, `INSERT INTO idp_links (`+linkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				l.Issuer, l.Subject, nu.ID, l.Provider, l.Email, l.Name, listText(l.Groups), millis(l.SeenAt), millis(l.SeenAt)); err != nil {
				return err
			}
			userID = nu.ID
		case err != nil:
			return err
		default:
			if err := userActive(ctx, c, userID); err != nil {
				return err
			}
			prev, err := one(c.row(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, userID), scanUser)
			if err != nil {
				return err
			}
			old = prev.Entitlements
			if old == nil {
				old = map[string][]string{}
			}
			if _, err := c.exec(ctx, `UPDATE idp_links SET provider = ?, email = ?, name = ?, groups = ?, seen_at = ?
				WHERE idp_issuer = ? AND subject = ?`,
				l.Provider, l.Email, l.Name, listText(l.Groups), millis(l.SeenAt), l.Issuer, l.Subject); err != nil {
				return err
			}
			if _, err := c.exec(ctx, `UPDATE users SET entitlements = ?, entitlements_source = ?, entitlements_at = ? WHERE id = ?`,
				mapText(in.Entitlements), EntitlementsIdP, millis(l.SeenAt), userID); err != nil {
				return err
			}
			if in.Cutoff != nil {
				if e := in.Cutoff(userID, old); e != nil {
					if err := addRevocation(ctx, c, *e); err != nil {
						return err
					}
				}
			}
		}
		u, err = one(c.row(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, userID), scanUser)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return u, old, nil
}

func (s *sqlStore) UserByIdentity(ctx context.Context, issuer, subject string) (*User, error) {
	return one(s.reader().row(ctx, `SELECT `+prefixed("u.", userCols)+` FROM users u JOIN idp_links l ON l.user_id = u.id
		WHERE l.idp_issuer = ? AND l.subject = ?`, issuer, subject), scanUser)
}

func (s *sqlStore) IdentityLinks(ctx context.Context, user string) ([]*IdentityLink, error) {
	if err := exists(ctx, s.reader(), `SELECT 1 FROM users WHERE id = ?`, user); err != nil {
		return nil, err
	}
	links, err := all(ctx, s.reader(), scanLink, `SELECT `+linkCols+` FROM idp_links WHERE user_id = ?`, user)
	slices.SortFunc(links, func(a, b *IdentityLink) int {
		return cmp.Or(strings.Compare(a.Issuer, b.Issuer), strings.Compare(a.Subject, b.Subject))
	})
	return links, err
}

// prefixed qualifies each column of a column list.
func prefixed(p, cols string) string {
	return p + strings.ReplaceAll(cols, ", ", ", "+p)
}

// userActive checks, holding the row in PostgreSQL until the transaction
// ends so that a concurrent RevokeUser waits, that the user exists and is
// not revoked.
func userActive(ctx context.Context, c conn, id string) error {
	var revoked int64
	err := c.row(ctx, `SELECT revoked_at FROM users WHERE id = ?`+c.d.forShare, id).Scan(&revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("user %s: %w", id, ErrNotFound)
	case err != nil:
		return err
	case revoked != 0:
		return fmt.Errorf("user %s: %w", id, ErrInactive)
	}
	return nil
}

func (s *sqlStore) RevokeUser(ctx context.Context, id string, now time.Time, cutoff revocation.Entry) error {
	if now.IsZero() {
		return errZeroTime
	}
	return s.tx(ctx, func(c conn) error {
		err := affected(c.exec(ctx, `UPDATE users SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, millis(now), id))
		if errors.Is(err, ErrNotFound) {
			// Already revoked (the first time stays), or no such user.
			err = exists(ctx, c, `SELECT 1 FROM users WHERE id = ?`, id)
		}
		if err != nil {
			return err
		}
		return addRevocation(ctx, c, cutoff)
	})
}

// Grants.

const grantCols = `id, parent, user_id, grantee, scopes, audience, constraints, via, created_at, expires_at, revoked_at`

func scanGrant(sc scanner) (*Grant, error) {
	var g Grant
	var parent sql.NullString
	var scopes, aud, cnst string
	var created, expires, revoked int64
	if err := sc.Scan(&g.ID, &parent, &g.User, &g.Grantee, &scopes, &aud, &cnst, &g.Via, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	var d decoder
	g.Parent = parent.String
	g.Scopes, g.Audience = d.list("scopes", scopes), d.list("audience", aud)
	g.Constraints = d.constraints(cnst)
	g.CreatedAt, g.ExpiresAt, g.RevokedAt = fromMillis(created), fromMillis(expires), fromMillis(revoked)
	return &g, d.err
}

func insertGrant(ctx context.Context, c conn, g *Grant) error {
	cnst, err := constraintsText(g.Constraints)
	if err != nil {
		return err
	}
	_, err = c.exec(ctx, `INSERT INTO grants (`+grantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, nullString(g.Parent), g.User, g.Grantee, listText(g.Scopes), listText(g.Audience), cnst, g.Via,
		millis(g.CreatedAt), millis(g.ExpiresAt), millis(g.RevokedAt))
	return err
}

func (s *sqlStore) CreateGrant(ctx context.Context, g *Grant) error {
	return s.tx(ctx, func(c conn) error {
		if err := userActive(ctx, c, g.User); err != nil {
			return err
		}
		if g.Parent != "" {
			var user string
			var revoked int64
			err := c.row(ctx, `SELECT user_id, revoked_at FROM grants WHERE id = ?`+c.d.forShare, g.Parent).Scan(&user, &revoked)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("parent grant %s: %w", g.Parent, ErrNotFound)
			case err != nil:
				return err
			case revoked != 0:
				return fmt.Errorf("parent grant %s: %w", g.Parent, ErrInactive)
			case user != g.User:
				return fmt.Errorf("store: grant %s: a chain acts for one user, its parent's", g.ID)
			}
		}
		return insertGrant(ctx, c, g)
	})
}

func (s *sqlStore) GetGrant(ctx context.Context, id string) (*Grant, error) {
	return one(s.reader().row(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id), scanGrant)
}

func (s *sqlStore) ChainActive(ctx context.Context, grants []string, now time.Time) error {
	return chainActive(ctx, s.reader(), grants, now)
}

// chainActive checks a chain in one query: every grant exists and neither
// it nor its user is revoked, nor is it expired at now.
func chainActive(ctx context.Context, c conn, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return fmt.Errorf("empty chain: %w", ErrNotFound)
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := c.query(ctx, `SELECT g.id, g.revoked_at, g.expires_at, u.revoked_at
		FROM grants g JOIN users u ON u.id = g.user_id
		WHERE g.id IN (`+marks(len(ids))+`)`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	found := make(map[string]bool, len(ids))
	var inactive string
	for rows.Next() {
		var id string
		var revoked, expires, userRevoked int64
		if err := rows.Scan(&id, &revoked, &expires, &userRevoked); err != nil {
			return err
		}
		found[id] = true
		if revoked != 0 || userRevoked != 0 || expired(expires, now) {
			inactive = id
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if !found[id] {
			return fmt.Errorf("grant %s: %w", id, ErrNotFound)
		}
	}
	if inactive != "" {
		return fmt.Errorf("grant %s: %w", inactive, ErrInactive)
	}
	return nil
}

// Agents.

const agentCols = `id, name, owner, parent, chain_grants, chain_agents, scopes, constraints,
	secret_hash, public_key, created_at, expires_at, revoked_at`

func scanAgent(sc scanner) (*Agent, error) {
	var a Agent
	var parent sql.NullString
	var chain, agents, scopes, cnst string
	var created, expires, revoked int64
	if err := sc.Scan(&a.ID, &a.Name, &a.Owner, &parent, &chain, &agents, &scopes, &cnst,
		&a.SecretHash, &a.PublicKey, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	var d decoder
	a.Parent = parent.String
	a.Chain, a.Agents, a.Scopes = d.list("chain_grants", chain), d.list("chain_agents", agents), d.list("scopes", scopes)
	a.Constraints = d.constraints(cnst)
	a.CreatedAt, a.ExpiresAt, a.RevokedAt = fromMillis(created), fromMillis(expires), fromMillis(revoked)
	return &a, d.err
}

// checkAgentShape checks what CreateAgent can know without reading: a's
// chain ends with g, g is given to a by a's owner, and a is a root exactly
// when its chain has one step.
func checkAgentShape(a *Agent, g *Grant) error {
	n := len(a.Chain)
	var why string
	switch {
	case n == 0 || len(a.Agents) != n:
		why = "Chain and Agents must be non-empty and of the same length"
	case a.Chain[n-1] != g.ID || a.Agents[n-1] != a.ID:
		why = "the last of Chain must be the grant's id and the last of Agents the agent's"
	case g.Grantee != a.ID || g.User != a.Owner:
		why = "the grant must be given to the agent by its owner"
	case n == 1 && (a.Parent != "" || g.Parent != ""):
		why = "a root agent and its grant have no parent"
	case n > 1 && (a.Parent != a.Agents[n-2] || g.Parent != a.Chain[n-2]):
		why = "Parent must be the second last of Agents, and the grant's parent the second last of Chain"
	default:
		return nil
	}
	return fmt.Errorf("store: agent %s: %s", a.ID, why)
}

func (s *sqlStore) CreateAgent(ctx context.Context, a *Agent, g *Grant, now time.Time) error {
	if err := checkAgentShape(a, g); err != nil {
		return err
	}
	cnst, err := constraintsText(a.Constraints)
	if err != nil {
		return err
	}
	n := len(a.Chain)
	return s.tx(ctx, func(c conn) error {
		// In PostgreSQL the owner, the grants of the chain and the parent
		// agent are held FOR SHARE until commit: a concurrent revocation of
		// any of them waits for this agent and then revokes it too, or
		// commits first and this sees it. The grants are locked one by
		// one, root first, and before the parent agent: revokeTree locks
		// its root grant and then only rows below it, so neither waits
		// for the other while holding what the other needs.
		if err := userActive(ctx, c, a.Owner); err != nil {
			return err
		}
		if a.Parent != "" {
			for _, id := range a.Chain[:n-1] {
				var found int
				err := c.row(ctx, `SELECT 1 FROM grants WHERE id = ?`+c.d.forShare, id).Scan(&found)
				if err != nil && !errors.Is(err, sql.ErrNoRows) { // a missing grant: chainActive says so
					return err
				}
			}
			p, err := one(c.row(ctx, `SELECT `+agentCols+` FROM agents WHERE id = ?`+c.d.forShare, a.Parent), scanAgent)
			if err != nil {
				return fmt.Errorf("parent agent %s: %w", a.Parent, err)
			}
			if !p.RevokedAt.IsZero() || expired(millis(p.ExpiresAt), now) {
				return fmt.Errorf("parent agent %s: %w", a.Parent, ErrInactive)
			}
			if p.Owner != a.Owner || !slices.Equal(p.Chain, a.Chain[:n-1]) || !slices.Equal(p.Agents, a.Agents[:n-1]) {
				return fmt.Errorf("store: agent %s: the chain must extend its parent's, with the same owner", a.ID)
			}
			if err := chainActive(ctx, c, a.Chain[:n-1], now); err != nil {
				return err
			}
		}
		if err := insertGrant(ctx, c, g); err != nil {
			return err
		}
		_, err := c.exec(ctx, `INSERT INTO agents (`+agentCols+`, grant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.Name, a.Owner, nullString(a.Parent), listText(a.Chain), listText(a.Agents), listText(a.Scopes), cnst,
			nullBytes(a.SecretHash), nullBytes(a.PublicKey), millis(a.CreatedAt), millis(a.ExpiresAt), millis(a.RevokedAt),
			g.ID)
		return err
	})
}

func (s *sqlStore) GetAgent(ctx context.Context, id string) (*Agent, error) {
	return one(s.reader().row(ctx, `SELECT `+agentCols+` FROM agents WHERE id = ?`, id), scanAgent)
}

func (s *sqlStore) ListAgents(ctx context.Context, owner string) ([]*Agent, error) {
	if owner == "" {
		return s.agents(ctx, "", "", "")
	}
	return s.agents(ctx, "owner", owner, `SELECT 1 FROM users WHERE id = ?`)
}

func (s *sqlStore) Children(ctx context.Context, id string) ([]*Agent, error) {
	return s.agents(ctx, "parent", id, `SELECT 1 FROM agents WHERE id = ?`)
}

// agents lists the agents whose column equals value (every agent when
// column is ""), oldest first. An empty list is ErrNotFound when the owner
// or parent named by value does not exist (checked by the query exist).
func (s *sqlStore) agents(ctx context.Context, column, value, exist string) ([]*Agent, error) {
	c := s.reader()
	query, args := `SELECT `+agentCols+` FROM agents`, []any(nil)
	if column != "" {
		query, args = query+` WHERE `+column+` = ?`, []any{value}
	}
	list, err := all(ctx, c, scanAgent, query, args...)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 && exist != "" {
		return nil, exists(ctx, c, exist, value)
	}
	slices.SortFunc(list, func(a, b *Agent) int { return byCreation(a.CreatedAt, b.CreatedAt, a.ID, b.ID) })
	return list, nil
}

func (s *sqlStore) SetAgentCredential(ctx context.Context, id string, secretHash, publicKey []byte) error {
	return affected(s.writer().exec(ctx, `UPDATE agents SET secret_hash = ?, public_key = ? WHERE id = ?`,
		nullBytes(secretHash), nullBytes(publicKey), id))
}

// Revocation of agents and grants.

func (s *sqlStore) RevokeAgent(ctx context.Context, id string, now, until time.Time) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(c conn) error {
		var grant string
		err := c.row(ctx, `SELECT grant_id FROM agents WHERE id = ?`, id).Scan(&grant)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		ids, err = revokeTree(ctx, c, grant, now, until)
		return err
	})
	return ids, err
}

func (s *sqlStore) RevokeGrant(ctx context.Context, id string, now, until time.Time) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(c conn) error {
		var err error
		ids, err = revokeTree(ctx, c, id, now, until)
		return err
	})
	return ids, err
}

// revokeTree revokes the grant root, every grant below it (by parent
// links), the agents holding those grants and the refresh tokens of those
// families. Agent parent links need no walk of their own: CreateAgent
// makes an agent's grant the child of its parent agent's grant.
//
// It returns every id of the tree breadth first (then by grant id), each
// agent before its grant, whether revoked now or before. Only what was not
// yet revoked is marked and gets a revocation entry, so a second call
// changes nothing.
func revokeTree(ctx context.Context, c conn, root string, now, until time.Time) ([]string, error) {
	if now.IsZero() {
		return nil, errZeroTime
	}
	// Locking the root first makes the tree read below complete in
	// PostgreSQL: an agent being created under it holds it FOR SHARE, so
	// this waits for that agent's commit, and a later CreateAgent waits for
	// ours and then finds the chain revoked.
	var id string
	err := c.row(ctx, `SELECT id FROM grants WHERE id = ?`+c.d.forUpdate, root).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	// Parents are inserted before their children and ids never change, so
	// the grant tree has no cycle and the recursion ends.
	rows, err := c.query(ctx, `WITH RECURSIVE tree (id, depth) AS (
			SELECT id, 0 FROM grants WHERE id = ?
			UNION ALL
			SELECT g.id, t.depth + 1 FROM grants g JOIN tree t ON g.parent = t.id
		)
		SELECT t.id, t.depth, a.id FROM tree t LEFT JOIN agents a ON a.grant_id = t.id`, root)
	if err != nil {
		return nil, err
	}
	type step struct {
		grant string
		depth int
		agent sql.NullString
	}
	var steps []step
	for rows.Next() {
		var st step
		if err := rows.Scan(&st.grant, &st.depth, &st.agent); err != nil {
			rows.Close()
			return nil, err
		}
		steps = append(steps, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(steps, func(a, b step) int {
		return cmp.Or(cmp.Compare(a.depth, b.depth), strings.Compare(a.grant, b.grant))
	})

	// Rows are marked top down, each grant before its agent, so that a
	// concurrent revocation of a subtree (which holds the subtree's root
	// grant) makes this wait at that grant before touching anything of the
	// subtree. "revoked_at = 0" decides, after any such wait, whether this
	// call is the one that revokes the row and writes its entry.
	var ids []string
	at := millis(now)
	for _, st := range steps {
		if st.agent.Valid {
			ids = append(ids, st.agent.String)
		}
		ids = append(ids, st.grant)
		revoked, err := markRevoked(ctx, c, `UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, at, st.grant, until)
		if err != nil {
			return nil, err
		}
		if revoked {
			if _, err := c.exec(ctx, `UPDATE refresh_tokens SET revoked_at = ?, successor = NULL, successor_until = 0 WHERE family = ? AND revoked_at = 0`, at, st.grant); err != nil {
				return nil, err
			}
		}
		if st.agent.Valid {
			if _, err := markRevoked(ctx, c, `UPDATE agents SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, at, st.agent.String, until); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// markRevoked runs update (revoked_at = at for id, where not yet revoked)
// and, when it changed the row, records id's revocation entry.
func markRevoked(ctx context.Context, c conn, update string, at int64, id string, until time.Time) (bool, error) {
	res, err := c.exec(ctx, update, at, id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, err
	}
	return true, addRevocation(ctx, c, revocation.Entry{ID: id, Until: until})
}

// Clients.

const clientCols = `id, name, kind, redirect_uris, resources, secret_hash, created_at, revoked_at`

func scanClient(sc scanner) (*Client, error) {
	var cl Client
	var uris, resources string
	var created, revoked int64
	if err := sc.Scan(&cl.ID, &cl.Name, &cl.Kind, &uris, &resources, &cl.SecretHash, &created, &revoked); err != nil {
		return nil, err
	}
	var d decoder
	cl.RedirectURIs = d.list("redirect_uris", uris)
	cl.Resources = d.list("resources", resources)
	cl.CreatedAt, cl.RevokedAt = fromMillis(created), fromMillis(revoked)
	return &cl, d.err
}

func (s *sqlStore) CreateClient(ctx context.Context, cl *Client) error {
	_, err := s.writer().exec(ctx, `INSERT INTO clients (`+clientCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		cl.ID, cl.Name, cl.Kind, listText(cl.RedirectURIs), listText(cl.Resources), nullBytes(cl.SecretHash),
		millis(cl.CreatedAt), millis(cl.RevokedAt))
	return err
}

func (s *sqlStore) GetClient(ctx context.Context, id string) (*Client, error) {
	return one(s.reader().row(ctx, `SELECT `+clientCols+` FROM clients WHERE id = ?`, id), scanClient)
}

func (s *sqlStore) SetClientResources(ctx context.Context, id string, resources []string) error {
	return affected(s.writer().exec(ctx, `UPDATE clients SET resources = ? WHERE id = ?`, listText(resources), id))
}

func (s *sqlStore) RevokeClient(ctx context.Context, id string, now, until time.Time, cutoff revocation.Entry) ([]string, error) {
	if now.IsZero() {
		return nil, errZeroTime
	}
	var ids []string
	err := s.tx(ctx, func(c conn) error {
		var revoked int64
		err := c.row(ctx, `SELECT revoked_at FROM clients WHERE id = ?`+c.d.forUpdate, id).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if revoked == 0 {
			if _, err := c.exec(ctx, `UPDATE clients SET revoked_at = ? WHERE id = ?`, millis(now), id); err != nil {
				return err
			}
		}
		if ids, err = revokeConsents(ctx, c, id, now, until); err != nil {
			return err
		}
		return addRevocation(ctx, c, cutoff)
	})
	return ids, err
}

// revokeConsents revokes every consent given to client that is not
// revoked yet, each with its tree (revokeTree), by grant id.
func revokeConsents(ctx context.Context, c conn, client string, now, until time.Time) ([]string, error) {
	roots, err := column(ctx, c, `SELECT id FROM grants WHERE grantee = ? AND parent IS NULL AND revoked_at = 0`, client)
	if err != nil {
		return nil, err
	}
	slices.Sort(roots)
	var ids []string
	for _, g := range roots {
		got, err := revokeTree(ctx, c, g, now, until)
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// column runs a query of one text column and returns its values.
func column(ctx context.Context, c conn, query string, args ...any) ([]string, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Kinds of client_revocations rows.
const (
	revokedClientID = "client_id"
	revokedHost     = "host"
)

func (s *sqlStore) RevokeMetadataClients(ctx context.Context, r ClientRevocation, now, until time.Time,
	cutoff func(client string) revocation.Entry) (clients, ids []string, err error) {
	if now.IsZero() {
		return nil, nil, errZeroTime
	}
	kind, value := revokedClientID, r.ClientID
	if r.Host != "" {
		kind, value = revokedHost, r.Host
	}
	if (r.ClientID == "") == (r.Host == "") {
		return nil, nil, errors.New("store: a client revocation names a client id or a host")
	}
	if r.Host != "" && (r.Host != strings.ToLower(r.Host) || strings.HasSuffix(r.Host, ".")) {
		return nil, nil, fmt.Errorf("store: host %q is not lower case without a trailing dot", r.Host)
	}
	err = s.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `INSERT INTO client_revocations (kind, value, revoked_at) VALUES (?, ?, ?)
			ON CONFLICT (kind, value) DO NOTHING`, kind, value, millis(now)); err != nil {
			return err
		}
		if r.ClientID != "" {
			clients = []string{r.ClientID}
		} else {
			// LIKE narrows the candidates (a host name has no % and its
			// _ only widens the match); urlHostCovered decides.
			candidates, err := column(ctx, c, `SELECT DISTINCT grantee FROM grants
				WHERE parent IS NULL AND revoked_at = 0 AND LOWER(grantee) LIKE ?`, "%"+r.Host+"%")
			if err != nil {
				return err
			}
			for _, id := range candidates {
				if urlHostCovered(r.Host, id) {
					clients = append(clients, id)
				}
			}
			slices.Sort(clients)
		}
		for _, client := range clients {
			got, err := revokeConsents(ctx, c, client, now, until)
			if err != nil {
				return err
			}
			ids = append(ids, got...)
			if err := addRevocation(ctx, c, cutoff(client)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return clients, ids, nil
}

func (s *sqlStore) MetadataClientRevoked(ctx context.Context, clientID string) (bool, error) {
	hosts := parentDomains(urlHost(clientID))
	args := []any{revokedClientID, clientID}
	query := `SELECT 1 FROM client_revocations WHERE (kind = ? AND value = ?)`
	if len(hosts) > 0 {
		query += ` OR (kind = ? AND value IN (` + marks(len(hosts)) + `))`
		args = append(args, revokedHost)
		for _, h := range hosts {
			args = append(args, h)
		}
	}
	err := exists(ctx, s.reader(), query+` LIMIT 1`, args...)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (s *sqlStore) ClientRevocations(ctx context.Context) ([]ClientRevocation, error) {
	rows, err := s.reader().query(ctx, `SELECT kind, value, revoked_at FROM client_revocations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ClientRevocation
	for rows.Next() {
		var kind, value string
		var at int64
		if err := rows.Scan(&kind, &value, &at); err != nil {
			return nil, err
		}
		r := ClientRevocation{RevokedAt: fromMillis(at)}
		if kind == revokedHost {
			r.Host = value
		} else {
			r.ClientID = value
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ClientRevocation) int {
		return cmp.Or(a.RevokedAt.Compare(b.RevokedAt), cmp.Compare(a.Host, b.Host), strings.Compare(a.ClientID, b.ClientID))
	})
	return out, rows.Err()
}

// urlHost is the host of a client ID URL as ClientRevocation.Host spells
// it, "" when the id is not an http(s) URL.
func urlHost(clientID string) string {
	u, err := url.Parse(clientID)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.String() // one spelling per address
	}
	return host
}

// parentDomains is host and, unless it is an IP address, every domain
// above it: a.b.example → a.b.example, b.example, example.
func parentDomains(host string) []string {
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return []string{host}
	}
	out := []string{host}
	for rest := host; ; {
		_, after, ok := strings.Cut(rest, ".")
		if !ok || after == "" {
			return out
		}
		out = append(out, after)
		rest = after
	}
}

// urlHostCovered reports whether a host revocation of host covers the
// client ID URL id.
func urlHostCovered(host, id string) bool {
	return slices.Contains(parentDomains(urlHost(id)), host)
}

func (s *sqlStore) HasConsent(ctx context.Context, user, client string, now time.Time) (bool, error) {
	err := exists(ctx, s.reader(), `SELECT 1 FROM grants WHERE grantee = ? AND user_id = ? AND parent IS NULL AND via = ''
		AND revoked_at = 0 AND (expires_at = 0 OR expires_at > ?) LIMIT 1`, client, user, now.UnixMilli())
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (s *sqlStore) Consents(ctx context.Context, user string, now time.Time) ([]*Grant, error) {
	c := s.reader()
	list, err := all(ctx, c, scanGrant, `SELECT `+grantCols+` FROM grants WHERE user_id = ? AND parent IS NULL
		AND NOT EXISTS (SELECT 1 FROM agents WHERE agents.grant_id = grants.id)
		AND revoked_at = 0 AND (expires_at = 0 OR expires_at > ?) ORDER BY created_at, id`, user, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, exists(ctx, c, `SELECT 1 FROM users WHERE id = ?`, user)
	}
	return list, nil
}

// Authorization codes.

const codeCols = `hash, client_id, user_id, grant_id, redirect_uri, challenge, resource, scopes, expires_at, used_at`

func scanCode(sc scanner) (*Code, error) {
	var cd Code
	var scopes string
	var expires, used int64
	if err := sc.Scan(&cd.Hash, &cd.ClientID, &cd.User, &cd.Grant, &cd.RedirectURI, &cd.Challenge, &cd.Resource,
		&scopes, &expires, &used); err != nil {
		return nil, err
	}
	var d decoder
	cd.Scopes = d.list("scopes", scopes)
	cd.ExpiresAt, cd.UsedAt = fromMillis(expires), fromMillis(used)
	return &cd, d.err
}

func (s *sqlStore) CreateCode(ctx context.Context, cd *Code) error {
	_, err := s.writer().exec(ctx, `INSERT INTO codes (`+codeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		cd.Hash, cd.ClientID, cd.User, cd.Grant, cd.RedirectURI, cd.Challenge, cd.Resource, listText(cd.Scopes),
		millis(cd.ExpiresAt), millis(cd.UsedAt))
	return err
}

func (s *sqlStore) ConsumeCode(ctx context.Context, hash []byte, now time.Time) (*Code, error) {
	if now.IsZero() {
		return nil, errZeroTime
	}
	c := s.writer()
	// One conditional UPDATE decides which of racing redemptions wins.
	cd, err := one(c.row(ctx, `UPDATE codes SET used_at = ? WHERE hash = ? AND used_at = 0 RETURNING `+codeCols,
		millis(now), hash), scanCode)
	if !errors.Is(err, ErrNotFound) {
		return cd, err
	}
	cd, err = one(c.row(ctx, `SELECT `+codeCols+` FROM codes WHERE hash = ?`, hash), scanCode)
	if err != nil {
		return nil, err
	}
	return cd, ErrUsed
}

// Refresh tokens.

// refreshCols are the columns CreateRefresh writes; a read adds
// successor.
const refreshCols = `hash, family, client_id, user_id, resource, scopes, created_at, expires_at, rotated_at, revoked_at`

const refreshRead = refreshCols + `, successor`

func scanRefresh(sc scanner) (*RefreshToken, error) {
	var r RefreshToken
	var scopes string
	var created, expires, rotated, revoked int64
	if err := sc.Scan(&r.Hash, &r.Family, &r.ClientID, &r.User, &r.Resource, &scopes,
		&created, &expires, &rotated, &revoked, &r.Successor); err != nil {
		return nil, err
	}
	var d decoder
	r.Scopes = d.list("scopes", scopes)
	r.CreatedAt, r.ExpiresAt = fromMillis(created), fromMillis(expires)
	r.RotatedAt, r.RevokedAt = fromMillis(rotated), fromMillis(revoked)
	return &r, d.err
}

func insertRefresh(ctx context.Context, c conn, r *RefreshToken) error {
	_, err := c.exec(ctx, `INSERT INTO refresh_tokens (`+refreshCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Hash, r.Family, r.ClientID, r.User, r.Resource, listText(r.Scopes),
		millis(r.CreatedAt), millis(r.ExpiresAt), millis(r.RotatedAt), millis(r.RevokedAt))
	return err
}

func (s *sqlStore) CreateRefresh(ctx context.Context, r *RefreshToken) error {
	return insertRefresh(ctx, s.writer(), r)
}

func (s *sqlStore) GetRefresh(ctx context.Context, hash []byte) (*RefreshToken, error) {
	return one(s.reader().row(ctx, `SELECT `+refreshRead+` FROM refresh_tokens WHERE hash = ?`, hash), scanRefresh)
}

func (s *sqlStore) RotateRefresh(ctx context.Context, oldHash []byte, next *RefreshToken, successor []byte, now time.Time, grace time.Duration) (*RefreshToken, error) {
	if now.IsZero() {
		return nil, errZeroTime
	}
	if grace <= 0 {
		successor = nil // no retry will ever ask for it
	}
	var old *RefreshToken
	err := s.tx(ctx, func(c conn) error {
		// The first rotation is one conditional UPDATE, so exactly one of
		// racing requests wins it and stores its successor; the others
		// (PostgreSQL re-checks the condition after the winner commits;
		// SQLite runs one write transaction at a time) fall through and
		// read the winner's successor.
		var err error
		old, err = one(c.row(ctx, `UPDATE refresh_tokens SET rotated_at = ?, successor = ?, successor_until = ?
			WHERE hash = ? AND rotated_at = 0 AND revoked_at = 0 RETURNING `+refreshRead,
			millis(now), nullBytes(successor), millis(now.Add(max(grace, 0))), oldHash), scanRefresh)
		if errors.Is(err, ErrNotFound) {
			old, err = one(c.row(ctx, `SELECT `+refreshRead+` FROM refresh_tokens WHERE hash = ?`, oldHash), scanRefresh)
			if err != nil {
				return err
			}
			// The window runs from the first rotation; a retry does not
			// extend it.
			if !old.RevokedAt.IsZero() || !now.Before(old.RotatedAt.Add(grace)) {
				return ErrUsed
			}
			return ErrRotated
		}
		if err != nil {
			return err
		}
		return insertRefresh(ctx, c, next)
	})
	switch {
	case errors.Is(err, ErrUsed), errors.Is(err, ErrRotated):
		return old, err
	case err != nil:
		return nil, err
	}
	return old, nil
}

// Authorization requests and sessions.

const authRequestCols = `id, client_id, redirect_uri, state, challenge, resource, scopes, prompt, max_age, auth_after, expires_at`

func scanAuthRequest(sc scanner) (*AuthRequest, error) {
	var r AuthRequest
	var scopes string
	var after, expires int64
	if err := sc.Scan(&r.ID, &r.ClientID, &r.RedirectURI, &r.State, &r.Challenge, &r.Resource, &scopes,
		&r.Prompt, &r.MaxAge, &after, &expires); err != nil {
		return nil, err
	}
	var d decoder
	r.Scopes = d.list("scopes", scopes)
	r.AuthAfter, r.ExpiresAt = fromMillis(after), fromMillis(expires)
	return &r, d.err
}

func (s *sqlStore) PutAuthRequest(ctx context.Context, r *AuthRequest) error {
	_, err := s.writer().exec(ctx, `INSERT INTO auth_requests (`+authRequestCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id, redirect_uri = excluded.redirect_uri,
			state = excluded.state, challenge = excluded.challenge, resource = excluded.resource,
			scopes = excluded.scopes, prompt = excluded.prompt, max_age = excluded.max_age,
			auth_after = excluded.auth_after, expires_at = excluded.expires_at`,
		r.ID, r.ClientID, r.RedirectURI, r.State, r.Challenge, r.Resource, listText(r.Scopes),
		r.Prompt, r.MaxAge, millis(r.AuthAfter), millis(r.ExpiresAt))
	return err
}

func (s *sqlStore) GetAuthRequest(ctx context.Context, id string, now time.Time) (*AuthRequest, error) {
	return one(s.reader().row(ctx, `SELECT `+authRequestCols+` FROM auth_requests
		WHERE id = ? AND (expires_at = 0 OR expires_at > ?)`, id, now.UnixMilli()), scanAuthRequest)
}

func (s *sqlStore) DeleteAuthRequest(ctx context.Context, id string) error {
	return affected(s.writer().exec(ctx, `DELETE FROM auth_requests WHERE id = ?`, id))
}

const sessionCols = `hash, user_id, csrf, created_at, expires_at`

func scanSession(sc scanner) (*Session, error) {
	var ss Session
	var created, expires int64
	if err := sc.Scan(&ss.Hash, &ss.User, &ss.CSRF, &created, &expires); err != nil {
		return nil, err
	}
	ss.CreatedAt, ss.ExpiresAt = fromMillis(created), fromMillis(expires)
	return &ss, nil
}

func (s *sqlStore) PutSession(ctx context.Context, ss *Session) error {
	_, err := s.writer().exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, csrf = excluded.csrf,
			created_at = excluded.created_at, expires_at = excluded.expires_at`,
		ss.Hash, ss.User, ss.CSRF, millis(ss.CreatedAt), millis(ss.ExpiresAt))
	return err
}

func (s *sqlStore) GetSession(ctx context.Context, hash []byte, now time.Time) (*Session, error) {
	return one(s.reader().row(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE hash = ? AND (expires_at = 0 OR expires_at > ?)`, hash, now.UnixMilli()), scanSession)
}

func (s *sqlStore) DeleteSession(ctx context.Context, hash []byte) error {
	return affected(s.writer().exec(ctx, `DELETE FROM sessions WHERE hash = ?`, hash))
}

// Signing keys.

const signingKeyCols = `kid, private_jwk, created_at, active_at, retired_at, expires_at`

func scanSigningKey(sc scanner) (*SigningKey, error) {
	var k SigningKey
	var created, active, retired, expires int64
	if err := sc.Scan(&k.KID, &k.Private, &created, &active, &retired, &expires); err != nil {
		return nil, err
	}
	k.CreatedAt, k.ActiveAt = fromMillis(created), fromMillis(active)
	k.RetiredAt, k.ExpiresAt = fromMillis(retired), fromMillis(expires)
	return &k, nil
}

func (s *sqlStore) AddSigningKey(ctx context.Context, k *SigningKey) error {
	if len(k.Private) == 0 {
		return fmt.Errorf("store: signing key %s: no private key", k.KID)
	}
	_, err := s.writer().exec(ctx, `INSERT INTO signing_keys (`+signingKeyCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		k.KID, k.Private, millis(k.CreatedAt), millis(k.ActiveAt), millis(k.RetiredAt), millis(k.ExpiresAt))
	return err
}

func (s *sqlStore) ListSigningKeys(ctx context.Context) ([]*SigningKey, error) {
	keys, err := all(ctx, s.reader(), scanSigningKey, `SELECT `+signingKeyCols+` FROM signing_keys`)
	slices.SortFunc(keys, func(a, b *SigningKey) int { return byCreation(a.CreatedAt, b.CreatedAt, a.KID, b.KID) })
	return keys, err
}

func (s *sqlStore) RetireSigningKey(ctx context.Context, kid string, at time.Time) error {
	if at.IsZero() {
		return errZeroTime
	}
	c := s.writer()
	err := affected(c.exec(ctx, `UPDATE signing_keys SET retired_at = ? WHERE kid = ? AND retired_at = 0`, millis(at), kid))
	if errors.Is(err, ErrNotFound) {
		// Retired already (the first retirement stays), or no such key.
		return exists(ctx, c, `SELECT 1 FROM signing_keys WHERE kid = ?`, kid)
	}
	return err
}

// Revocations.

// addRevocation validates e and stores it; an existing entry of the same
// key keeps the later Until and Before, as revocation.Set does.
func addRevocation(ctx context.Context, c conn, e revocation.Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("store: revocation entry: %w", err)
	}
	_, err := c.exec(ctx, `INSERT INTO revocations (cutoff, id, before_at, until_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (cutoff, id) DO UPDATE SET
			before_at = `+c.d.greatest+`(revocations.before_at, excluded.before_at),
			until_at = `+c.d.greatest+`(revocations.until_at, excluded.until_at)`,
		string(e.Cutoff), e.ID, millis(e.Before), millis(e.Until))
	return err
}

func (s *sqlStore) AddRevocations(ctx context.Context, entries []revocation.Entry) error {
	return s.tx(ctx, func(c conn) error {
		for _, e := range entries {
			if err := addRevocation(ctx, c, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *sqlStore) LiveRevocations(ctx context.Context, now time.Time) ([]revocation.Entry, error) {
	rows, err := s.reader().query(ctx, `SELECT cutoff, id, before_at, until_at FROM revocations WHERE until_at > ?`, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []revocation.Entry
	for rows.Next() {
		var e revocation.Entry
		var cutoff string
		var before, until int64
		if err := rows.Scan(&cutoff, &e.ID, &before, &until); err != nil {
			return nil, err
		}
		e.Cutoff, e.Before, e.Until = revocation.Kind(cutoff), fromMillis(before), fromMillis(until)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b revocation.Entry) int {
		return cmp.Or(strings.Compare(string(a.Cutoff), string(b.Cutoff)), strings.Compare(a.ID, b.ID))
	})
	return out, rows.Err()
}

// Sweep.

func (s *sqlStore) Sweep(ctx context.Context, now time.Time) error {
	at := now.UnixMilli()
	return s.tx(ctx, func(c conn) error {
		for _, q := range []string{
			`DELETE FROM codes WHERE expires_at <> 0 AND expires_at <= ?`,
			`DELETE FROM auth_requests WHERE expires_at <> 0 AND expires_at <= ?`,
			`DELETE FROM sessions WHERE expires_at <> 0 AND expires_at <= ?`,
			`DELETE FROM refresh_tokens WHERE expires_at <> 0 AND expires_at <= ?`,
			`DELETE FROM revocations WHERE until_at <= ?`,
			`DELETE FROM signing_keys WHERE expires_at <> 0 AND expires_at <= ?`,
			// A sealed successor is needed only inside its grace window.
			`UPDATE refresh_tokens SET successor = NULL, successor_until = 0 WHERE successor_until <> 0 AND successor_until <= ?`,
		} {
			if _, err := c.exec(ctx, q, at); err != nil {
				return err
			}
		}
		return nil
	})
}
