package store

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis deployments the store connects to (the data plane's and the manager's --redis-mode).
const (
	// TopologySingle is one Redis server (or a managed endpoint that hides its replicas).
	TopologySingle = "single"
	// TopologySentinel is a primary with replicas watched by Sentinel: the URL names a sentinel
	// and the primary's name, and the client follows failovers.
	TopologySentinel = "sentinel"
	// TopologyCluster is a Redis Cluster: the URL names one or more nodes, and each script runs
	// on the node that owns its hash tag.
	TopologyCluster = "cluster"
)

// ClientDefaults are the settings [NewClient] gives a client where its URL leaves them unset.
type ClientDefaults struct {
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// PoolSize is per node on a Cluster.
	PoolSize int
}

// RequestPathDefaults are the data plane's: a store call must fail fast so that the fail modes
// can apply (read and write timeouts are a backstop; callers' context deadlines are tighter),
// and a replica under a burst has hundreds of calls in flight.
var RequestPathDefaults = ClientDefaults{DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second,
	WriteTimeout: time.Second, PoolSize: DefaultPoolSize}

// NewClient builds a client for the Redis deployment at rawURL, of the given topology ("" is
// single), without connecting yet:
//
//   - single: redis://[user:pass@]host:port/db (rediss:// for TLS).
//   - sentinel: redis://[sentinel-user:pass@]sentinel:26379/db?master_name=NAME&addr=sentinel2:26379…
//     with the primary's own credentials, if any, as username= and password= query parameters.
//   - cluster: redis://[user:pass@]node:6379?addr=node2:6379&addr=node3:6379 (any reachable
//     node is enough; the client discovers the rest).
//
// Query parameters are go-redis's (pool_size, read_timeout, max_retries, protocol…); d fills in
// the timeouts and pool size they leave unset. Every client honours context deadlines on the
// socket, dials once (a refused connection reaches the caller at once), and speaks RESP2 unless
// the URL asks for another protocol.
func NewClient(topology, rawURL string, d ClientDefaults) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid %s redis url: %w", topologyName(topology), err)
	}
	set := u.Query()
	switch topology {
	case "", TopologySingle:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("invalid single redis url: %w", err)
		}
		d.apply(set, clientFields{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolSize,
			&o.Protocol, &o.ContextTimeoutEnabled, &o.DialerRetries, &o.DialerRetryTimeout})
		// Under RESP3 push notifications may wait on idle connections, which go-redis finds with
		// the health check that opaqueDialer skips; keep it there.
		if o.Protocol == 2 {
			o.Dialer = opaqueDialer(redis.NewDialer(o))
		}
		return redis.NewClient(o), nil
	case TopologySentinel:
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("invalid sentinel redis url: %w", err)
		}
		if o.MasterName == "" {
			return nil, fmt.Errorf("invalid sentinel redis url: it needs master_name=NAME, the name the sentinels monitor the primary under")
		}
		d.apply(set, clientFields{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolSize,
			&o.Protocol, &o.ContextTimeoutEnabled, &o.DialerRetries, &o.DialerRetryTimeout})
		return redis.NewFailoverClient(o), nil
	case TopologyCluster:
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("invalid cluster redis url: %w", err)
		}
		d.apply(set, clientFields{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolSize,
			&o.Protocol, &o.ContextTimeoutEnabled, &o.DialerRetries, &o.DialerRetryTimeout})
		return redis.NewClusterClient(o), nil
	default:
		return nil, CheckTopology(topology)
	}
}

// CheckTopology says what is wrong with topology, if it names none of the topologies ("" is single).
func CheckTopology(topology string) error {
	switch topology {
	case "", TopologySingle, TopologySentinel, TopologyCluster:
		return nil
	}
	return fmt.Errorf("unknown redis topology %q: use %s, %s or %s", topology, TopologySingle, TopologySentinel, TopologyCluster)
}

// Dial connects to the Redis deployment at rawURL (see [NewClient]) with the request path's
// defaults, checks that it answers, and returns a store that closes the client with it.
func Dial(ctx context.Context, topology, rawURL string, opts RedisOptions) (*Redis, error) {
	c, err := NewClient(topology, rawURL, RequestPathDefaults)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("failed to reach redis: %w", err)
	}
	r := NewRedis(c, opts)
	r.owned = true
	return r, nil
}

func topologyName(topology string) string {
	if topology == "" {
		return TopologySingle
	}
	return topology
}

// clientFields points at the settings go-redis's option structs (Options, FailoverOptions,
// ClusterOptions) share.
type clientFields struct {
	dial, read, write *time.Duration
	pool, protocol    *int
	contextTimeout    *bool
	dialRetries       *int
	dialRetryTimeout  *time.Duration
}

// apply sets what the URL's query (set) left unset, and what every store client needs.
func (d ClientDefaults) apply(set url.Values, f clientFields) {
	if !set.Has("dial_timeout") {
		*f.dial = d.DialTimeout
	}
	if !set.Has("read_timeout") {
		*f.read = d.ReadTimeout
	}
	if !set.Has("write_timeout") {
		*f.write = d.WriteTimeout
	}
	if !set.Has("pool_size") {
		*f.pool = d.PoolSize
	}
	// The store uses no push notifications, client-side caching or maintenance notifications,
	// which are what RESP3 is for (go-redis otherwise turns maintenance notifications on, with a
	// pool hook on every connection use).
	if !set.Has("protocol") {
		*f.protocol = 2
	}
	// Honour context deadlines on the socket, so a hung server costs a request its caller's
	// timeout (the governor's AdmitTimeout), not ReadTimeout.
	*f.contextTimeout = true
	// A refused connection should reach the caller (and its fail mode) at once, not after
	// go-redis's default five dial attempts 100ms apart.
	*f.dialRetries, *f.dialRetryTimeout = 1, 10*time.Millisecond
}
