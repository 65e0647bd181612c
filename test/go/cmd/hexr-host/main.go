// Command hexr-host is a go-plugin HOST that loads an external SPIRE
// WorkloadAttestor the way the SPIRE 1.13.3 agent's catalog does
// (spiffe/spire pkg/common/catalog/external.go, plugin.go, host.go;
// /work/shared/docs/spire-plugin-protocol.md 1.3-1.6), built with exactly
// SPIRE 1.13.3's dependency versions (this module requires SPIRE itself:
// go-plugin v1.7.0, grpc v1.76.0, protobuf v1.36.10, go-hclog v1.6.3):
//
//   - HandshakeConfig{ProtocolVersion: 1, MagicCookieKey/Value: "WorkloadAttestor"}
//   - AllowedProtocols: grpc only; AutoMTLS off; Pdeathsig SIGKILL on Linux
//   - Logger: SPIRE's own HCLogAdapter (pkg/common/log) over a logrus logger
//     with the plugin_name / plugin_type / external fields, JSON on stderr
//     (what the agent logs with log_format = "json")
//   - go-plugin opens the GRPCBroker and GRPCStdio streams on connect
//   - Dispense: GRPCClient calls broker.Accept(1), so ConnInfo{service_id:1}
//     goes down the broker stream, and serves the agent's host service
//     (spire.hostservice.common.metrics.v1.Metrics) there
//   - Init (spire-plugin-sdk/private.Init, as SPIRE) -> Configure
//     {trust_domain, HCL from -config} through the SDK's typed clients
//   - Attest for -pids (with -concurrency, -repeat; or a -bench / -duration run)
//   - Deinit (private.Deinit, 10 s deadline) -> Kill (broker close,
//     Controller.Shutdown, 2 s grace, then SIGKILL)
//
// Results go to stdout (or the -out file) as JSON lines ({"event": ...}),
// queued so that a slow reader never holds up the calls. Exit status 1 when the
// plugin fails to load (an "error" event says why), 2 on bad flags.
//
//	cd test/go && go build -o /tmp/host ./cmd/hexr-host
//	/tmp/host -config plugin.hcl -pids 1,2 -- node dist/main.js plugin
package main

import (
	"bufio"
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

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/spire-plugin-sdk/private"
	metricsv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/common/metrics/v1"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	spirelog "github.com/spiffe/spire/pkg/common/log"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// The agent's only host service (pkg/agent/catalog: HostServices).
var metrics = metricsv1.MetricsServiceServer(metricsv1.UnimplementedMetricsServer{})

const (
	pluginType    = "WorkloadAttestor"
	pluginName    = "hexr"
	attestorV1    = "spire.plugin.agent.workloadattestor.v1.WorkloadAttestor"
	deinitTimeout = 10 * time.Second
)

// ---- the go-plugin plugin: SPIRE's hcClientPlugin ----------------------------

type hostPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	log logrus.FieldLogger

	mu         sync.Mutex
	hostServer *grpc.Server
	brokerAddr string
}

func (p *hostPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("not implemented host side")
}

// GRPCClient mirrors SPIRE: accept broker id 1 (sends ConnInfo down the
// broker stream) and serve the agent's host services there.
func (p *hostPlugin) GRPCClient(_ context.Context, b *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	lis, err := b.Accept(private.HostServiceProviderID)
	if err != nil {
		return nil, err
	}
	server := grpc.NewServer()
	// The agent's only host service. Our plugin never dials it; registering
	// the unimplemented server keeps the advertised name truthful.
	metrics.RegisterServer(server)
	go func() {
		if err := server.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			p.log.WithError(err).Error("Host services server failed")
			c.Close()
		}
	}()
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

// Events go to stdout through a queue drained by one writer goroutine, so that
// Attest callers never wait for the test that reads us: a reader slowed down
// by a loaded machine (the hardening load test forks ~200 processes a second
// from the process that reads this pipe) must not throttle the calls we make.
var (
	outQueue = make(chan []byte, 1<<20)
	outDone  = make(chan struct{})
)

// startEvents starts the writer; out is stdout or the -out file.
func startEvents(out *os.File) {
	go func() {
		defer close(outDone)
		w := bufio.NewWriterSize(out, 64*1024)
		for b := range outQueue {
			_, _ = w.Write(b)
			if len(outQueue) == 0 {
				_ = w.Flush()
			}
		}
		_ = w.Flush()
	}()
}

func emit(event string, fields map[string]any) {
	fields["event"] = event
	b, _ := json.Marshal(fields)
	outQueue <- append(b, '\n')
}

// flushEvents writes out every queued event; call it once, before exiting.
func flushEvents() {
	close(outQueue)
	<-outDone
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

func grpcError(err error) map[string]any {
	st, _ := status.FromError(err)
	return map[string]any{"code": st.Code().String(), "message": st.Message()}
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
	forAtMost    time.Duration
	warmup       time.Duration
	callTimeout  time.Duration
	logLevel     string
	skipConfig   bool
	startTimeout time.Duration
	outFile      string
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
	flag.DurationVar(&o.forAtMost, "for", 0, "with -repeat: start no call after this long, even if fewer were made (every call still printed)")
	flag.DurationVar(&o.warmup, "warmup", 0, "with -duration: call for this long first, summarized apart (\"warmup\" event), then measure")
	flag.DurationVar(&o.callTimeout, "call-timeout", 0, "deadline per Attest (SPIRE sets none: 0)")
	flag.StringVar(&o.logLevel, "log-level", "debug", "host logger level (debug|info|warn|error; SPIRE's adapter drops trace)")
	flag.BoolVar(&o.skipConfig, "skip-configure", false, "do not call Configure")
	flag.DurationVar(&o.startTimeout, "start-timeout", time.Minute, "go-plugin StartTimeout (SPIRE: default 1m)")
	flag.StringVar(&o.outFile, "out", "", "write the JSON events to this file instead of stdout (never blocked by a slow reader)")
	flag.Parse()
	o.command = flag.Args()
	if len(o.command) == 0 {
		return nil, errors.New("usage: hexr-host [flags] -- <plugin command> [args...]")
	}
	if o.duration > 0 {
		o.bench = true
	}
	if o.warmup < 0 || (o.warmup > 0 && o.duration <= 0) {
		return nil, errors.New("-warmup needs -duration, and cannot be negative")
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
	out := os.Stdout
	if o.outFile != "" {
		f, err := os.Create(o.outFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		out = f
	}
	startEvents(out)
	code := run(o)
	flushEvents()
	_ = out.Close()
	os.Exit(code)
}

// newLogger is the agent's logger (log_format = "json") with the fields SPIRE's
// catalog adds for a plugin (makePluginLog).
func newLogger(level string) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(os.Stderr)
	l.SetFormatter(&logrus.JSONFormatter{})
	lvl, err := logrus.ParseLevel(level)
	if err != nil || level == "trace" {
		lvl = logrus.DebugLevel // SPIRE has no trace level for plugins
	}
	l.SetLevel(lvl)
	return l.WithFields(logrus.Fields{"plugin_name": pluginName, "plugin_type": pluginType, "external": true})
}

func run(o *options) int {
	log := newLogger(o.logLevel)

	hcl := ""
	if o.configFile != "" {
		b, err := os.ReadFile(o.configFile)
		if err != nil {
			emit("error", map[string]any{"stage": "config-file", "message": err.Error()})
			return 1
		}
		hcl = string(b)
	}

	// SPIRE: filepath.Abs, no $PATH lookup for plugin_cmd... except that
	// tests pass "node", so resolve it here the way a test would write plugin_cmd.
	path := o.command[0]
	if !strings.Contains(path, "/") {
		if p, err := exec.LookPath(path); err == nil {
			path = p
		}
	}
	cmd := exec.Command(path, o.command[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	hp := &hostPlugin{log: log}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  1,
			MagicCookieKey:   pluginType,
			MagicCookieValue: pluginType,
		},
		Cmd:              cmd,
		AutoMTLS:         false,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Plugins:          map[string]goplugin.Plugin{pluginName: hp},
		Logger:           spirelog.NewHCLogAdapter(log, pluginName),
		StartTimeout:     o.startTimeout,
	})

	fail := func(stage string, err error) int {
		ev := map[string]any{"stage": stage, "message": err.Error()}
		if st, ok := status.FromError(err); ok {
			ev["code"] = st.Code().String()
			ev["message"] = st.Message()
		}
		log.WithError(err).WithField("stage", stage).Error("failed to load plugin")
		emit("error", ev)
		killed := killPlugin(client, hp)
		emit("killed", killed)
		return 1
	}

	t0 := time.Now()
	rpcClient, err := client.Client() // exec + handshake + dial + broker/stdio streams
	if err != nil {
		return fail("launch", err)
	}
	handshake := time.Since(t0)
	raw, err := rpcClient.Dispense(pluginName) // broker.Accept(1)
	if err != nil {
		return fail("dispense", err)
	}
	conn := raw.(*grpc.ClientConn)
	rc := client.ReattachConfig()

	ctx := context.Background()
	t1 := time.Now()
	names, err := private.Init(ctx, conn, []string{metrics.GRPCServiceName()})
	if err != nil {
		return fail("init", err)
	}
	initDur := time.Since(t1)
	emit("loaded", map[string]any{
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
		if n == attestorV1 {
			hasAttestor = true
		}
	}
	if !hasAttestor {
		return fail("bind", fmt.Errorf("no supported plugin interface found in: %v", names))
	}

	if !o.skipConfig {
		t2 := time.Now()
		_, err := configv1.NewConfigClient(conn).Configure(ctx, &configv1.ConfigureRequest{
			CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: o.trustDomain},
			HclConfiguration:  hcl,
		})
		if err != nil {
			return fail("configure", err)
		}
		emit("configured", map[string]any{"configure_ms": ms(time.Since(t2))})
	}
	log.Info("Plugin loaded")

	o.pids = resolvePids(o.pidSpecs, rc.Pid)
	if len(o.pids) > 0 {
		attestAll(ctx, workloadattestorv1.NewWorkloadAttestorClient(conn), o)
	}

	t3 := time.Now()
	dctx, cancel := context.WithTimeout(ctx, deinitTimeout)
	err = private.Deinit(dctx, conn)
	cancel()
	deinit := map[string]any{"deinit_ms": ms(time.Since(t3))}
	if err != nil {
		deinit["error"] = grpcError(err)
	}
	emit("deinit", deinit)

	emit("killed", killPlugin(client, hp))
	return 0
}

func killPlugin(client *goplugin.Client, hp *hostPlugin) map[string]any {
	t := time.Now()
	client.Kill() // broker close, Controller.Shutdown, 2 s grace, then SIGKILL
	d := time.Since(t)
	hp.stop()
	return map[string]any{"kill_ms": ms(d), "exited": client.Exited(), "graceful": d < 2*time.Second}
}

type result struct {
	pid     int32
	values  []string
	err     error
	start   time.Time
	latency time.Duration
}

func attestOnce(ctx context.Context, c workloadattestorv1.WorkloadAttestorClient, pid int32, timeout time.Duration) result {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	t := time.Now()
	resp, err := c.Attest(ctx, &workloadattestorv1.AttestRequest{Pid: pid})
	r := result{pid: pid, start: t, latency: time.Since(t), err: err}
	if err == nil {
		r.values = resp.GetSelectorValues()
		if r.values == nil {
			r.values = []string{}
		}
	}
	return r
}

func attestAll(ctx context.Context, c workloadattestorv1.WorkloadAttestorClient, o *options) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		lats    []time.Duration
		warm    []time.Duration
		warmErr int
		errs    = map[string]int{}
		next    int64
		started = time.Now()
		total   = int64(len(o.pids) * o.repeat)
	)
	deadline := time.Time{}
	measureFrom := started
	if o.duration > 0 {
		measureFrom = started.Add(o.warmup)
		deadline = measureFrom.Add(o.duration)
	} else if o.forAtMost > 0 {
		deadline = started.Add(o.forAtMost)
	}
	take := func() (int32, bool) {
		mu.Lock()
		defer mu.Unlock()
		if o.duration == 0 && next >= total {
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
				r := attestOnce(ctx, c, pid, o.callTimeout)
				if o.bench {
					mu.Lock()
					if o.warmup > 0 && r.start.Before(measureFrom) {
						warm = append(warm, r.latency) // started during the warm-up
						if r.err != nil {
							warmErr++
						}
						mu.Unlock()
						continue
					}
					lats = append(lats, r.latency)
					if r.err != nil {
						st, _ := status.FromError(r.err)
						errs[st.Code().String()]++
					}
					mu.Unlock()
					continue
				}
				ev := map[string]any{"pid": r.pid, "ms": ms(r.latency)}
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
	elapsed := time.Since(measureFrom)
	pctOf := func(xs []time.Duration) func(float64) float64 {
		sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
		return func(p float64) float64 {
			if len(xs) == 0 {
				return 0
			}
			i := int(math.Ceil(p*float64(len(xs)))) - 1
			if i < 0 {
				i = 0
			}
			return ms(xs[i])
		}
	}
	if o.warmup > 0 {
		w := pctOf(warm)
		emit("warmup", map[string]any{"calls": len(warm), "errors": warmErr, "seconds": o.warmup.Seconds(), "p50_ms": w(0.50), "p99_ms": w(0.99), "max_ms": w(1.0)})
	}
	pct := pctOf(lats)
	nerr := 0
	for _, n := range errs {
		nerr += n
	}
	emit("bench", map[string]any{
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
