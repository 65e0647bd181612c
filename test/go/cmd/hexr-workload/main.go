// Command hexr-workload is a real Workload API client (go-spiffe's generated
// SpiffeWorkloadAPI client, the same calls go-spiffe's workloadapi makes) for
// the spire test tier and the SPIRE benchmark. It runs INSIDE a test pod as
// the role process itself: it can write its own marker the way the SDK does
// (temp file + rename, container_pid = its own PID in the pod), so the PID the
// SPIRE agent gets from SO_PEERCRED is the PID the daemon mapped.
//
//	hexr-workload serve -socket S -control C [marker flags]
//	    answers every connection on the unix socket C: reads one line
//	    ("fetch"), fetches X.509-SVIDs from S, writes one JSON line back.
//	hexr-workload first -socket S [marker flags]
//	    writes its marker, then fetches until an SVID arrives; prints the time
//	    from the marker's rename to the first SVID (and the attempts).
//	hexr-workload bench -sockets hexr=S1,unix=S2 [-concurrency N] [-duration D] [-rounds R] [marker flags]
//	    FetchX509SVID latency and throughput against each socket, rounds
//	    interleaved, one JSON line per label.
//
// Marker flags: -marker-dir D -agent A -tenant T -role R [-framework F] [-wait-for FILE].
package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type markerFlags struct {
	dir, agent, tenant, role, framework string
	waitFor                             string
}

func (m *markerFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&m.dir, "marker-dir", "", "context directory to write this process's marker into (empty: none)")
	fs.StringVar(&m.agent, "agent", "content-crew", "marker agent_name")
	fs.StringVar(&m.tenant, "tenant", "acme", "marker tenant")
	fs.StringVar(&m.role, "role", "", "marker process_role")
	fs.StringVar(&m.framework, "framework", "crewai", "marker framework")
	fs.StringVar(&m.waitFor, "wait-for", "", "wait until this file exists before writing the marker (lets the caller see the process first)")
}

// write writes {agent}-{role}.json as the SDK does: temp file, then rename.
// It returns the time of the rename.
func (m *markerFlags) write() (time.Time, error) {
	for m.waitFor != "" {
		if _, err := os.Stat(m.waitFor); err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if m.dir == "" {
		return time.Time{}, nil
	}
	if m.role == "" {
		return time.Time{}, errors.New("-role is required with -marker-dir")
	}
	body, _ := json.Marshal(map[string]any{
		"agent_name": m.agent, "tenant": m.tenant, "process_role": m.role,
		"framework": m.framework, "container_pid": os.Getpid(),
	})
	name := fmt.Sprintf("%s-%s.json", m.agent, m.role)
	tmp := filepath.Join(m.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return time.Time{}, err
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, name)); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

func dial(socket string) (*grpc.ClientConn, workload.SpiffeWorkloadAPIClient, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return conn, workload.NewSpiffeWorkloadAPIClient(conn), nil
}

// fetch opens a FetchX509SVID stream, takes its first response, and closes it
// (what `spire-agent api fetch x509` and go-spiffe's FetchX509SVID do).
func fetch(ctx context.Context, c workload.SpiffeWorkloadAPIClient, timeout time.Duration) (*workload.X509SVIDResponse, error) {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true"), timeout)
	defer cancel()
	stream, err := c.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		return nil, err
	}
	return stream.Recv()
}

type svidOut struct {
	SpiffeID string `json:"spiffe_id"`
	Hint     string `json:"hint,omitempty"`
	CertPEM  string `json:"cert_pem"`
}

type fetchOut struct {
	OK      bool      `json:"ok"`
	Code    string    `json:"code,omitempty"`
	Message string    `json:"message,omitempty"`
	SVIDs   []svidOut `json:"svids,omitempty"`
	Ms      float64   `json:"ms"`
	PID     int       `json:"pid"`
}

func result(resp *workload.X509SVIDResponse, err error, d time.Duration) fetchOut {
	out := fetchOut{Ms: ms(d), PID: os.Getpid()}
	if err != nil {
		st, _ := status.FromError(err)
		out.Code, out.Message = st.Code().String(), st.Message()
		return out
	}
	out.OK = true
	for _, s := range resp.GetSvids() {
		certs, perr := x509.ParseCertificates(s.GetX509Svid())
		if perr != nil || len(certs) == 0 {
			return fetchOut{Code: "BadResponse", Message: fmt.Sprintf("unparsable SVID for %s: %v", s.GetSpiffeId(), perr), Ms: ms(d), PID: os.Getpid()}
		}
		out.SVIDs = append(out.SVIDs, svidOut{
			SpiffeID: s.GetSpiffeId(),
			Hint:     s.GetHint(),
			CertPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw})),
		})
	}
	return out
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

func printJSON(v any) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "hexr-workload:", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: hexr-workload serve|first|bench [flags]"))
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "first":
		first(os.Args[2:])
	case "bench":
		bench(os.Args[2:])
	default:
		fail(fmt.Errorf("unknown subcommand %q", os.Args[1]))
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	socket := fs.String("socket", "", "Workload API socket")
	control := fs.String("control", "", "unix socket to take fetch requests on")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of one fetch")
	var m markerFlags
	m.add(fs)
	_ = fs.Parse(args)
	if *socket == "" || *control == "" {
		fail(errors.New("serve needs -socket and -control"))
	}
	_ = os.Remove(*control)
	lis, err := net.Listen("unix", *control)
	if err != nil {
		fail(err)
	}
	if _, err := m.write(); err != nil {
		fail(err)
	}
	conn, client, err := dial(*socket)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	printJSON(map[string]any{"event": "ready", "pid": os.Getpid()})
	for {
		c, err := lis.Accept()
		if err != nil {
			fail(err)
		}
		go func(c net.Conn) {
			defer c.Close()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || strings.TrimSpace(line) != "fetch" {
				return
			}
			t := time.Now()
			resp, err := fetch(context.Background(), client, *timeout)
			b, _ := json.Marshal(result(resp, err, time.Since(t)))
			_, _ = c.Write(append(b, '\n'))
		}(c)
	}
}

func first(args []string) {
	fs := flag.NewFlagSet("first", flag.ExitOnError)
	socket := fs.String("socket", "", "Workload API socket")
	give := fs.Duration("give-up", 30*time.Second, "stop trying after this long")
	want := fs.String("want", "", "SPIFFE ID to wait for (empty: any SVID)")
	var m markerFlags
	m.add(fs)
	_ = fs.Parse(args)
	conn, client, err := dial(*socket)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	conn.Connect()
	written, err := m.write()
	if err != nil {
		fail(err)
	}
	if written.IsZero() {
		written = time.Now()
	}
	attempts := 0
	var last fetchOut
	for time.Since(written) < *give {
		attempts++
		t := time.Now()
		resp, err := fetch(context.Background(), client, 5*time.Second)
		last = result(resp, err, time.Since(t))
		if last.OK {
			for _, s := range last.SVIDs {
				if *want == "" || s.SpiffeID == *want {
					printJSON(map[string]any{"event": "first", "ms": ms(time.Since(written)), "attempts": attempts, "spiffe_id": s.SpiffeID, "pid": os.Getpid()})
					return
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	printJSON(map[string]any{"event": "gave-up", "attempts": attempts, "last": last})
	os.Exit(1)
}

type target struct{ label, socket string }

func bench(args []string) {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	sockets := fs.String("sockets", "", "label=socket,... (rounds alternate between them)")
	concurrency := fs.Int("concurrency", 1, "parallel fetchers (one connection each)")
	duration := fs.Duration("duration", 2*time.Second, "length of one round for one socket")
	rounds := fs.Int("rounds", 5, "rounds per socket")
	warmup := fs.Int("warmup", 50, "fetches per socket before measuring")
	var m markerFlags
	m.add(fs)
	_ = fs.Parse(args)
	var targets []target
	for _, kv := range strings.Split(*sockets, ",") {
		l, s, ok := strings.Cut(kv, "=")
		if !ok {
			fail(fmt.Errorf("bad -sockets entry %q", kv))
		}
		targets = append(targets, target{l, s})
	}
	if _, err := m.write(); err != nil {
		fail(err)
	}
	clients := make(map[string][]workload.SpiffeWorkloadAPIClient)
	for _, t := range targets {
		for i := 0; i < *concurrency; i++ {
			conn, c, err := dial(t.socket)
			if err != nil {
				fail(err)
			}
			defer conn.Close()
			clients[t.label] = append(clients[t.label], c)
		}
		// Warm up: every connection fetches until it gets an SVID.
		for _, c := range clients[t.label] {
			deadline := time.Now().Add(30 * time.Second)
			ok := 0
			for ok < *warmup {
				if time.Now().After(deadline) {
					fail(fmt.Errorf("%s: no SVID within 30 s", t.label))
				}
				if resp, err := fetch(context.Background(), c, 5*time.Second); err == nil && len(resp.GetSvids()) > 0 {
					ok++
				} else {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
	}
	type acc struct {
		lats    []time.Duration
		errs    map[string]int
		elapsed time.Duration
		ids     map[string]int
	}
	res := map[string]*acc{}
	for _, t := range targets {
		res[t.label] = &acc{errs: map[string]int{}, ids: map[string]int{}}
	}
	for r := 0; r < *rounds; r++ {
		for _, t := range targets {
			a := res[t.label]
			var mu sync.Mutex
			var wg sync.WaitGroup
			start := time.Now()
			end := start.Add(*duration)
			for _, c := range clients[t.label] {
				wg.Add(1)
				go func(c workload.SpiffeWorkloadAPIClient) {
					defer wg.Done()
					var lats []time.Duration
					errs := map[string]int{}
					ids := map[string]int{}
					for time.Now().Before(end) {
						t0 := time.Now()
						resp, err := fetch(context.Background(), c, 5*time.Second)
						lats = append(lats, time.Since(t0))
						switch {
						case err != nil:
							errs[status.Code(err).String()]++
						case len(resp.GetSvids()) == 0:
							errs["NoSVID"]++
						default:
							ids[resp.GetSvids()[0].GetSpiffeId()]++
						}
					}
					mu.Lock()
					a.lats = append(a.lats, lats...)
					for k, v := range errs {
						a.errs[k] += v
					}
					for k, v := range ids {
						a.ids[k] += v
					}
					mu.Unlock()
				}(c)
			}
			wg.Wait()
			a.elapsed += time.Since(start)
		}
	}
	for _, t := range targets {
		a := res[t.label]
		sort.Slice(a.lats, func(i, j int) bool { return a.lats[i] < a.lats[j] })
		pct := func(p float64) float64 {
			if len(a.lats) == 0 {
				return 0
			}
			i := int(math.Ceil(p*float64(len(a.lats)))) - 1
			if i < 0 {
				i = 0
			}
			return ms(a.lats[i])
		}
		nerr := 0
		for _, n := range a.errs {
			nerr += n
		}
		printJSON(map[string]any{
			"event":          "bench",
			"label":          t.label,
			"calls":          len(a.lats),
			"errors":         nerr,
			"error_codes":    a.errs,
			"spiffe_ids":     a.ids,
			"concurrency":    *concurrency,
			"rounds":         *rounds,
			"throughput_rps": math.Round(float64(len(a.lats))/a.elapsed.Seconds()*10) / 10,
			"p50_ms":         pct(0.5),
			"p90_ms":         pct(0.9),
			"p99_ms":         pct(0.99),
			"p999_ms":        pct(0.999),
			"max_ms":         pct(1),
		})
	}
}
