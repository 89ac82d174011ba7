// Package inferd is the Go client of an inferd server (the inferd.v1.Inference gRPC service):
// Infer and Stream with JSON records, raw JSON, text, blobs or tensors; Setup, Load, Unload,
// Models and Health; TLS, bearer tokens, per-call deadlines and typed errors (*Error).
//
//	client, err := inferd.Dial("127.0.0.1:50051", inferd.Options{})
//	defer client.Close()
//	result, err := client.Infer(ctx, "wine", inferd.JSON(records))
package inferd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	pb "github.com/inferd/inferd/clients/go/inferdv1"
)

// DefaultMaxReceiveBytes is the largest message a client takes by default: 64 MiB, the most
// an inferd server sends (gRPC's own default is 4 MiB).
const DefaultMaxReceiveBytes = 64 << 20

// TLS says how a client connects over TLS.
type TLS struct {
	// CAFile or CA (PEM): the certificate(s) that signed the server's; neither: the system's roots.
	CAFile string
	CA     []byte
	// CertFile and KeyFile: the client's own certificate and key, for mutual TLS.
	CertFile, KeyFile string
	// ServerName: the name to check the server's certificate against when it is not the
	// address's host (a certificate for "localhost" reached at 127.0.0.1:50051).
	ServerName string
}

// Options are a client's settings; the zero value is a plaintext client without a token.
type Options struct {
	// TLS: nil connects in plaintext.
	TLS *TLS
	// Token is sent as "authorization: Bearer <token>" on every call but Health.
	Token string
	// Timeout is the default deadline of every call (0: none but the context's own).
	Timeout time.Duration
	// MaxReceiveBytes: the largest answer accepted (0: DefaultMaxReceiveBytes). It also
	// bounds what the client sends.
	MaxReceiveBytes int
	// DialOptions are added to the client's own (interceptors, a custom dialer, ...).
	DialOptions []grpc.DialOption
}

// Client is a connection to an inferd server; safe for concurrent use. Close it when done.
type Client struct {
	conn    *grpc.ClientConn
	stub    pb.InferenceClient
	health  healthpb.HealthClient
	token   string
	timeout time.Duration
}

// Dial makes a client of the server at address ("host:port"). It connects lazily: a server
// that cannot be reached shows as an UNAVAILABLE error on the first call.
func Dial(address string, options Options) (*Client, error) {
	limit := options.MaxReceiveBytes
	if limit <= 0 {
		limit = DefaultMaxReceiveBytes
	}
	creds := insecure.NewCredentials()
	if options.TLS != nil {
		config, err := options.TLS.config()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(config)
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(limit), grpc.MaxCallSendMsgSize(limit)),
	}
	conn, err := grpc.NewClient(address, append(dial, options.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("inferd: %w", err)
	}
	return &Client{
		conn: conn, stub: pb.NewInferenceClient(conn), health: healthpb.NewHealthClient(conn),
		token: options.Token, timeout: options.Timeout,
	}, nil
}

func (t *TLS) config() (*tls.Config, error) {
	config := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	ca := t.CA
	if t.CAFile != "" {
		data, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("inferd: TLS CA: %w", err)
		}
		ca = append(append([]byte{}, ca...), data...)
	}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("inferd: TLS CA: no PEM certificate found")
		}
		config.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("inferd: TLS: give both CertFile and KeyFile (mutual TLS), or neither")
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("inferd: TLS client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// CallOption sets something about one call.
type CallOption func(*callSettings)

type callSettings struct {
	id         string
	parameters map[string]any
	timeout    time.Duration
}

// WithID sets the request's id, which the answer echoes.
func WithID(id string) CallOption { return func(s *callSettings) { s.id = id } }

// WithParameters sets the request's parameters (sent as a protobuf Struct; see ToStruct).
func WithParameters(parameters map[string]any) CallOption {
	return func(s *callSettings) { s.parameters = parameters }
}

// WithTimeout sets this call's deadline, in place of Options.Timeout.
func WithTimeout(timeout time.Duration) CallOption {
	return func(s *callSettings) { s.timeout = timeout }
}

func (c *Client) settings(options []CallOption) callSettings {
	s := callSettings{timeout: c.timeout}
	for _, option := range options {
		option(&s)
	}
	return s
}

// callContext is ctx with the call's deadline and, when authenticated, the bearer token.
func (c *Client) callContext(ctx context.Context, s callSettings, authenticated bool) (context.Context, context.CancelFunc) {
	cancel := context.CancelFunc(func() {})
	if s.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
	}
	if authenticated && c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	return ctx, cancel
}

// Input is what a request carries: JSON, JSONText, Text, a Blob or Tensors.
type Input interface {
	payload() (*pb.Payload, error)
}

type jsonInput struct{ value any }

func (j jsonInput) payload() (*pb.Payload, error) {
	data, err := json.Marshal(j.value)
	if err != nil {
		return nil, fmt.Errorf("inferd: JSON input: %w", err)
	}
	return &pb.Payload{Kind: &pb.Payload_Json{Json: data}}, nil
}

// JSON sends a Go value as JSON (encoding/json): records ([]map[string]any, a slice of
// structs, one map) for record-based models, any value otherwise.
func JSON(value any) Input { return jsonInput{value} }

// JSONText sends these bytes as the JSON payload, exactly as they are.
type JSONText []byte

func (j JSONText) payload() (*pb.Payload, error) {
	return &pb.Payload{Kind: &pb.Payload_Json{Json: []byte(j)}}, nil
}

// Text sends plain text (a prompt, a sentence).
type Text string

func (t Text) payload() (*pb.Payload, error) {
	return &pb.Payload{Kind: &pb.Payload_Text{Text: string(t)}}, nil
}

// Blob is binary content and its media type ("image/png"; "" when unknown).
type Blob struct {
	Data        []byte
	ContentType string
}

func (b Blob) payload() (*pb.Payload, error) {
	return &pb.Payload{Kind: &pb.Payload_Blob{Blob: &pb.Blob{Data: b.Data, ContentType: b.ContentType}}}, nil
}

// Tensors sends raw tensors (names unique).
type Tensors []*Tensor

func (ts Tensors) payload() (*pb.Payload, error) {
	list := &pb.Tensors{Tensors: make([]*pb.Tensor, len(ts))}
	for i, t := range ts {
		w, err := t.toWire()
		if err != nil {
			return nil, err
		}
		list.Tensors[i] = w
	}
	return &pb.Payload{Kind: &pb.Payload_Tensors{Tensors: list}}, nil
}

// Kind says which of an Output's fields is set.
type Kind int

// The kinds of output.
const (
	KindNone Kind = iota
	KindJSON
	KindText
	KindBlob
	KindTensors
)

// Output is what an answer carries: JSON (the raw UTF-8 bytes: Value decodes them), Text, a
// Blob or Tensors, as Kind says.
type Output struct {
	Kind    Kind
	JSON    json.RawMessage
	Text    string
	Blob    Blob
	Tensors []*Tensor
}

// Value is a JSON output as native Go values (see DecodeJSON); the text as a string for a
// text output, the Blob for a blob, and a map name -> *Tensor for tensors.
func (o *Output) Value() (any, error) {
	switch o.Kind {
	case KindJSON:
		return DecodeJSON(o.JSON)
	case KindText:
		return o.Text, nil
	case KindBlob:
		return o.Blob, nil
	case KindTensors:
		m := make(map[string]*Tensor, len(o.Tensors))
		for _, t := range o.Tensors {
			m[t.Name] = t
		}
		return m, nil
	}
	return nil, nil
}

// Decode unmarshals a JSON output into v (encoding/json).
func (o *Output) Decode(v any) error {
	if o.Kind != KindJSON {
		return fmt.Errorf("inferd: the output is not JSON")
	}
	return json.Unmarshal(o.JSON, v)
}

// Tensor is the output tensor of that name, or nil.
func (o *Output) Tensor(name string) *Tensor {
	for _, t := range o.Tensors {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func outputFromWire(p *pb.Payload) (*Output, error) {
	switch k := p.GetKind().(type) {
	case *pb.Payload_Json:
		return &Output{Kind: KindJSON, JSON: k.Json}, nil
	case *pb.Payload_Text:
		return &Output{Kind: KindText, Text: k.Text}, nil
	case *pb.Payload_Blob:
		return &Output{Kind: KindBlob, Blob: Blob{Data: k.Blob.GetData(), ContentType: k.Blob.GetContentType()}}, nil
	case *pb.Payload_Tensors:
		out := &Output{Kind: KindTensors, Tensors: make([]*Tensor, 0, len(k.Tensors.GetTensors()))}
		for _, w := range k.Tensors.GetTensors() {
			t, err := tensorFromWire(w)
			if err != nil {
				return nil, err
			}
			out.Tensors = append(out.Tensors, t)
		}
		return out, nil
	}
	return &Output{Kind: KindNone}, nil
}

// Timing is how long one stage of a request took.
type Timing struct {
	Stage string
	Ms    float64
}

func timings(w []*pb.StageTiming) []Timing {
	out := make([]Timing, len(w))
	for i, t := range w {
		out[i] = Timing{Stage: t.GetStage(), Ms: t.GetMs()}
	}
	return out
}

// Result is the answer to one Infer call.
type Result struct {
	Model, ID string
	Output    *Output
	// Parameters: metadata the model reported about its output (e.g. sample_rate).
	Parameters map[string]any
	// Timings: the stages in the order they ran, ending with "total".
	Timings []Timing
}

func request(model string, input Input, s callSettings) (*pb.InferRequest, error) {
	if input == nil {
		return nil, fmt.Errorf("inferd: no input")
	}
	payload, err := input.payload()
	if err != nil {
		return nil, err
	}
	parameters, err := ToStruct(s.parameters)
	if err != nil {
		return nil, err
	}
	return &pb.InferRequest{Model: model, Id: s.id, Input: payload, Parameters: parameters}, nil
}

// Infer runs one request through model and returns its answer.
func (c *Client) Infer(ctx context.Context, model string, input Input, options ...CallOption) (*Result, error) {
	s := c.settings(options)
	req, err := request(model, input, s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.callContext(ctx, s, true)
	defer cancel()
	var trailers metadata.MD
	resp, err := c.stub.Infer(ctx, req, grpc.Trailer(&trailers))
	if err != nil {
		return nil, fromRPC(err, trailers)
	}
	output, err := outputFromWire(resp.GetOutput())
	if err != nil {
		return nil, err
	}
	return &Result{
		Model: resp.GetModel(), ID: resp.GetId(), Output: output,
		Parameters: FromStruct(resp.GetParameters()), Timings: timings(resp.GetTimings()),
	}, nil
}

// Chunk is one message of a Stream call; the last has Final set and carries the timings.
type Chunk struct {
	Model, ID string
	// Index: the chunk's position in the stream, from 0.
	Index int64
	// Output is nil on a final message that carries nothing more.
	Output     *Output
	Parameters map[string]any
	Final      bool
	Timings    []Timing
}

// Stream runs a request through a streaming model and yields its chunks as they come:
//
//	for chunk, err := range client.Stream(ctx, "echo", inferd.Text("one two")) {
//		if err != nil { ... }  // the call failed: the last thing yielded
//		fmt.Print(chunk.Output.Text)
//	}
//
// Breaking out of the loop cancels the call (so does cancelling ctx).
func (c *Client) Stream(ctx context.Context, model string, input Input, options ...CallOption) iter.Seq2[*Chunk, error] {
	return func(yield func(*Chunk, error) bool) {
		s := c.settings(options)
		req, err := request(model, input, s)
		if err != nil {
			yield(nil, err)
			return
		}
		ctx, cancel := c.callContext(ctx, s, true)
		defer cancel()
		ctx, stop := context.WithCancel(ctx)
		defer stop() // cancels the RPC when the loop breaks
		stream, err := c.stub.Stream(ctx, req)
		if err != nil {
			yield(nil, fromRPC(err, nil))
			return
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return
				}
				yield(nil, fromRPC(err, stream.Trailer()))
				return
			}
			chunk := &Chunk{
				Model: resp.GetModel(), ID: resp.GetId(), Index: int64(resp.GetIndex()),
				Parameters: FromStruct(resp.GetParameters()), Final: resp.GetFinal(), Timings: timings(resp.GetTimings()),
			}
			if resp.GetOutput() != nil {
				if chunk.Output, err = outputFromWire(resp.GetOutput()); err != nil {
					yield(nil, err)
					return
				}
			}
			if !yield(chunk, nil) {
				return
			}
		}
	}
}

// Setup prepares a declared model (idempotent) and returns its setup time in milliseconds.
func (c *Client) Setup(ctx context.Context, model string, options ...CallOption) (float64, error) {
	ctx, cancel := c.callContext(ctx, c.settings(options), true)
	defer cancel()
	var trailers metadata.MD
	resp, err := c.stub.Setup(ctx, &pb.SetupRequest{Model: model}, grpc.Trailer(&trailers))
	if err != nil {
		return 0, fromRPC(err, trailers)
	}
	return resp.GetSetupMs(), nil
}

// Load loads a declared model (also after Unload; a ready one is reloaded) and returns its
// setup time in milliseconds.
func (c *Client) Load(ctx context.Context, model string, options ...CallOption) (float64, error) {
	ctx, cancel := c.callContext(ctx, c.settings(options), true)
	defer cancel()
	var trailers metadata.MD
	resp, err := c.stub.Load(ctx, &pb.LoadRequest{Model: model}, grpc.Trailer(&trailers))
	if err != nil {
		return 0, fromRPC(err, trailers)
	}
	return resp.GetSetupMs(), nil
}

// Unload unloads a model once its requests in flight have finished; it refuses new ones.
func (c *Client) Unload(ctx context.Context, model string, options ...CallOption) error {
	ctx, cancel := c.callContext(ctx, c.settings(options), true)
	defer cancel()
	var trailers metadata.MD
	_, err := c.stub.Unload(ctx, &pb.UnloadRequest{Model: model}, grpc.Trailer(&trailers))
	return fromRPC(err, trailers)
}

// Health is the gRPC health status ("SERVING", "NOT_SERVING", ...) of the server (service "")
// or of a model (its name). It sends no token.
func (c *Client) Health(ctx context.Context, service string, options ...CallOption) (string, error) {
	ctx, cancel := c.callContext(ctx, c.settings(options), false)
	defer cancel()
	var trailers metadata.MD
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.Trailer(&trailers))
	if err != nil {
		return "", fromRPC(err, trailers)
	}
	return resp.GetStatus().String(), nil
}
