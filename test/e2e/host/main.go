// Command host is a minimal go-plugin HOST that loads an external SPIRE
// WorkloadAttestor exactly as the SPIRE agent does
// (spiffe/spire pkg/common/catalog/external.go; docs/spire-plugin-protocol.md 1.3-1.6):
//
//   - HandshakeConfig{ProtocolVersion: 1, MagicCookieKey/Value: "WorkloadAttestor"}
//   - AllowedProtocols: grpc only; no AutoMTLS; Pdeathsig SIGKILL on Linux
//   - Logger: hclog JSON on our stderr (plugin stderr lines are re-logged there)
//   - Dispense: GRPCClient calls broker.Accept(1) so ConnInfo{service_id:1} goes
//     down the broker stream, and serves a (trivial) host-service server there
//   - Init{host_service_names: [Metrics]} -> Configure{trust_domain, HCL from -config}
//   - Attest for -pids (with -concurrency, -repeat; or a -bench / -duration run)
//   - Deinit (10 s deadline) -> Kill (Controller.Shutdown, 2 s grace, then SIGKILL)
//
// Results go to stdout as JSON lines ({"event": ...}). Exit status 1 when the
// plugin fails to load (an "error" event says why), 2 on bad flags.
//
// Built offline in GOPATH mode against Debian's packages (go-plugin 1.0.1,
// grpc 1.33, protobuf 1.28, hclog 0.11): no generated code; messages are
// encoded by hand with protowire and sent through a raw-bytes codec.
//
//	GO111MODULE=off GOPATH=$TMP:/usr/share/gocode go build -o host .
//	./host -config plugin.hcl -pids 1,2 -- node dist/main.js plugin
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	pluginType         = "WorkloadAttestor"
	metricsServiceName = "spire.hostservice.common.metrics.v1.Metrics"
	initPath           = "/spire.service.private.init.v1.Init/Init"
	deinitPath         = "/spire.service.private.init.v1.Init/Deinit"
	configurePath      = "/spire.service.common.config.v1.Config/Configure"
	attestPath         = "/spire.plugin.agent.workloadattestor.v1.WorkloadAttestor/Attest"
	deinitTimeout      = 10 * time.Second
)

// ---- raw protobuf over grpc ------------------------------------------------

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case *[]byte:
		return *b, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

func invoke(ctx context.Context, conn *grpc.ClientConn, method string, req []byte) ([]byte, error) {
	var resp []byte
	err := conn.Invoke(ctx, method, req, &resp, grpc.ForceCodec(rawCodec{}))
	return resp, err
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// repeatedStrings decodes every occurrence of a string field; other fields are skipped.
func repeatedStrings(msg []byte, field protowire.Number) ([]string, error) {
	out := []string{}
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
		if num == field && typ == protowire.BytesType {
			s, m := protowire.ConsumeString(msg)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			out = append(out, s)
			msg = msg[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, msg)
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		msg = msg[m:]
	}
	return out, nil
}

func initRequest(hostServices []string) []byte {
	var b []byte
	for _, s := range hostServices {
		b = appendString(b, 1, s)
	}
	return b
}

func configureRequest(trustDomain, hcl string) []byte {
	core := appendString(nil, 1, trustDomain)
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, core)
	if hcl != "" {
		b = appendString(b, 2, hcl)
	}
	return b
}

func attestRequest(pid int32) []byte {
	if pid == 0 {
		return nil
	}
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(pid))) // int32: sign-extended
}

// ---- the go-plugin plugin: SPIRE's hcClientPlugin, reduced ------------------

type hostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	log hclog.Logger

	mu         sync.Mutex
	hostServer *grpc.Server
	brokerAddr string
}

func (p *hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("not implemented host side")
}

// GRPCClient mirrors SPIRE: accept broker id 1 (sends ConnInfo down the
// broker stream) and serve host services there.
func (p *hostPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	lis, err := b.Accept(1)
	if err != nil {
		return nil, fmt.Errorf("broker accept: %w", err)
	}
	server := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(server, hs)
	go func() { _ = server.Serve(lis) }()
	p.mu.Lock()
	p.hostServer = server
	p.brokerAddr = lis.Addr().String()
	p.mu.Unlock()
	return c, nil
}

func (p *hostPlugin) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hostServer != nil {
		p.hostServer.Stop()
	}
}

// ---- output ------------------------------------------------------------------

var outMu sync.Mutex

func emit(event string, fields map[string]interface{}) {
	fields["event"] = event
	b, _ := json.Marshal(fields)
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

func grpcError(err error) map[string]interface{} {
	st, _ := status.FromError(err)
	return map[string]interface{}{"code": st.Code().String(), "message": st.Message()}
}

// ---- main --------------------------------------------------------------------

type options struct {
	configFile   string
	trustDomain  string
	pidSpecs     []string
	pids         []int32
	concurrency  int
	repeat       int
	bench        bool
	duration     time.Duration
	callTimeout  time.Duration
	logLevel     string
	skipConfig   bool
	startTimeout time.Duration
	command      []string
}

func parseFlags() (*options, error) {
	o := &options{}
	var pids string
	flag.StringVar(&o.configFile, "config", "", "file whose text is sent as hcl_configuration (empty: none)")
	flag.StringVar(&o.trustDomain, "trust-domain", "example.org", "core_configuration.trust_domain")
	flag.StringVar(&pids, "pids", "", `comma-separated PIDs to attest; "host" = this host's PID, "plugin" = the plugin's PID`)
	flag.IntVar(&o.concurrency, "concurrency", 1, "parallel Attest calls")
	flag.IntVar(&o.repeat, "repeat", 1, "attest every PID this many times")
	flag.BoolVar(&o.bench, "bench", false, "print one latency/throughput summary instead of every result")
	flag.DurationVar(&o.duration, "duration", 0, "bench for this long instead of -repeat (implies -bench)")
	flag.DurationVar(&o.callTimeout, "call-timeout", 0, "deadline per Attest (SPIRE sets none: 0)")
	flag.StringVar(&o.logLevel, "log-level", "debug", "host logger level (trace|debug|info|warn|error)")
	flag.BoolVar(&o.skipConfig, "skip-configure", false, "do not call Configure")
	flag.DurationVar(&o.startTimeout, "start-timeout", time.Minute, "go-plugin StartTimeout (SPIRE: default 1m)")
	flag.Parse()
	o.command = flag.Args()
	if len(o.command) == 0 {
		return nil, errors.New("usage: host [flags] -- <plugin command> [args...]")
	}
	if o.duration > 0 {
		o.bench = true
	}
	if o.concurrency < 1 || o.repeat < 0 {
		return nil, errors.New("-concurrency must be >= 1 and -repeat >= 0")
	}
	for _, s := range strings.Split(pids, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if s != "host" && s != "plugin" {
			if _, err := strconv.ParseInt(s, 10, 32); err != nil {
				return nil, fmt.Errorf("bad pid %q: %v", s, err)
			}
		}
		o.pidSpecs = append(o.pidSpecs, s)
	}
	return o, nil
}

func resolvePids(specs []string, pluginPid int) []int32 {
	out := make([]int32, 0, len(specs))
	for _, s := range specs {
		switch s {
		case "host":
			out = append(out, int32(os.Getpid()))
		case "plugin":
			out = append(out, int32(pluginPid))
		default:
			n, _ := strconv.ParseInt(s, 10, 32)
			out = append(out, int32(n))
		}
	}
	return out
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o *options) int {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "agent",
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(o.logLevel),
	})

	hcl := ""
	if o.configFile != "" {
		b, err := os.ReadFile(o.configFile)
		if err != nil {
			emit("error", map[string]interface{}{"stage": "config-file", "message": err.Error()})
			return 1
		}
		hcl = string(b)
	}

	// As SPIRE: absolute path, no $PATH lookup for plugin_cmd... except that
	// tests pass "node", so resolve it here the way a test would write plugin_cmd.
	path := o.command[0]
	if !strings.Contains(path, "/") {
		if p, err := exec.LookPath(path); err == nil {
			path = p
		}
	}
	cmd := exec.Command(path, o.command[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	hp := &hostPlugin{log: logger}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  1,
			MagicCookieKey:   pluginType,
			MagicCookieValue: pluginType,
		},
		Plugins:          map[string]plugin.Plugin{pluginType: hp},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		StartTimeout:     o.startTimeout,
		// AutoMTLS: false (SPIRE: "TODO ... go-plugin#109")
	})

	fail := func(stage string, err error) int {
		ev := map[string]interface{}{"stage": stage, "message": err.Error()}
		if st, ok := status.FromError(err); ok {
			ev["code"] = st.Code().String()
			ev["message"] = st.Message()
		}
		logger.Error("failed to load plugin", "stage", stage, "error", err.Error())
		emit("error", ev)
		killed := killPlugin(client, hp)
		emit("killed", killed)
		return 1
	}

	t0 := time.Now()
	rpcClient, err := client.Client() // exec + handshake + dial
	if err != nil {
		return fail("launch", err)
	}
	handshake := time.Since(t0)
	raw, err := rpcClient.Dispense(pluginType) // broker.Accept(1)
	if err != nil {
		return fail("dispense", err)
	}
	conn := raw.(*grpc.ClientConn)
	rc := client.ReattachConfig()

	ctx := context.Background()
	t1 := time.Now()
	resp, err := invoke(ctx, conn, initPath, initRequest([]string{metricsServiceName}))
	if err != nil {
		return fail("init", err)
	}
	names, err := repeatedStrings(resp, 1)
	if err != nil {
		return fail("init", err)
	}
	initDur := time.Since(t1)
	emit("loaded", map[string]interface{}{
		"pid":                  rc.Pid,
		"socket":               rc.Addr.String(),
		"network":              rc.Addr.Network(),
		"handshake_ms":         ms(handshake),
		"init_ms":              ms(initDur),
		"plugin_service_names": names,
		"broker_address":       hp.brokerAddr,
		"host_pid":             os.Getpid(),
	})
	hasAttestor := false
	for _, n := range names {
		if n == "spire.plugin.agent.workloadattestor.v1.WorkloadAttestor" {
			hasAttestor = true
		}
	}
	if !hasAttestor {
		return fail("bind", fmt.Errorf("no supported plugin interface found in: %v", names))
	}

	if !o.skipConfig {
		t2 := time.Now()
		if _, err := invoke(ctx, conn, configurePath, configureRequest(o.trustDomain, hcl)); err != nil {
			return fail("configure", err)
		}
		emit("configured", map[string]interface{}{"configure_ms": ms(time.Since(t2))})
	}
	logger.Info("Plugin loaded", "plugin_name", "hexr", "plugin_type", pluginType, "external", true)

	o.pids = resolvePids(o.pidSpecs, rc.Pid)
	if len(o.pids) > 0 {
		attestAll(ctx, conn, o)
	}

	t3 := time.Now()
	dctx, cancel := context.WithTimeout(ctx, deinitTimeout)
	_, err = invoke(dctx, conn, deinitPath, nil)
	cancel()
	deinit := map[string]interface{}{"deinit_ms": ms(time.Since(t3))}
	if err != nil {
		deinit["error"] = grpcError(err)
	}
	emit("deinit", deinit)

	emit("killed", killPlugin(client, hp))
	return 0
}

func killPlugin(client *plugin.Client, hp *hostPlugin) map[string]interface{} {
	t := time.Now()
	client.Kill() // broker close, Controller.Shutdown, 2 s grace, then SIGKILL
	d := time.Since(t)
	hp.stop()
	return map[string]interface{}{"kill_ms": ms(d), "exited": client.Exited(), "graceful": d < 2*time.Second}
}

type result struct {
	pid     int32
	values  []string
	err     error
	latency time.Duration
}

func attestOnce(ctx context.Context, conn *grpc.ClientConn, pid int32, timeout time.Duration) result {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	t := time.Now()
	resp, err := invoke(ctx, conn, attestPath, attestRequest(pid))
	r := result{pid: pid, latency: time.Since(t), err: err}
	if err == nil {
		r.values, r.err = repeatedStrings(resp, 1)
	}
	return r
}

func attestAll(ctx context.Context, conn *grpc.ClientConn, o *options) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		lats    []time.Duration
		errs    = map[string]int{}
		next    int64
		started = time.Now()
		total   = int64(len(o.pids) * o.repeat)
	)
	deadline := time.Time{}
	if o.duration > 0 {
		deadline = started.Add(o.duration)
	}
	take := func() (int32, bool) {
		mu.Lock()
		defer mu.Unlock()
		if deadline.IsZero() && next >= total {
			return 0, false
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return 0, false
		}
		pid := o.pids[next%int64(len(o.pids))]
		next++
		return pid, true
	}
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pid, ok := take()
				if !ok {
					return
				}
				r := attestOnce(ctx, conn, pid, o.callTimeout)
				if o.bench {
					mu.Lock()
					lats = append(lats, r.latency)
					if r.err != nil {
						st, _ := status.FromError(r.err)
						errs[st.Code().String()]++
					}
					mu.Unlock()
					continue
				}
				ev := map[string]interface{}{"pid": r.pid, "ms": ms(r.latency)}
				if r.err != nil {
					ev["error"] = grpcError(r.err)
				} else {
					ev["selector_values"] = r.values
				}
				emit("attest", ev)
			}
		}()
	}
	wg.Wait()
	if !o.bench {
		return
	}
	elapsed := time.Since(started)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		i := int(math.Ceil(p*float64(len(lats)))) - 1
		if i < 0 {
			i = 0
		}
		return ms(lats[i])
	}
	nerr := 0
	for _, n := range errs {
		nerr += n
	}
	emit("bench", map[string]interface{}{
		"calls":          len(lats),
		"errors":         nerr,
		"error_codes":    errs,
		"concurrency":    o.concurrency,
		"elapsed_s":      math.Round(elapsed.Seconds()*1000) / 1000,
		"throughput_rps": math.Round(float64(len(lats))/elapsed.Seconds()*10) / 10,
		"p50_ms":         pct(0.50),
		"p99_ms":         pct(0.99),
		"p999_ms":        pct(0.999),
		"max_ms":         pct(1.0),
	})
}
