package inferd_test

// The Go runner of clients/conformance/cases.json (see clients/conformance/README.md): each
// case runs through the inferd client, as a user calls it, and is checked against its
// `expect`; the report goes to $INFERD_CONFORMANCE_REPORT. Skipped unless
// INFERD_CONFORMANCE, INFERD_CONFORMANCE_CASES and INFERD_CONFORMANCE_REPORT are set.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"testing"
	"time"

	inferd "github.com/inferd/inferd/clients/go"
)

type connection struct {
	Plain, Secure, CA string
	ServerName        string            `json:"server_name"`
	Tokens            map[string]string `json:"tokens"`
	MaxMessageBytes   int               `json:"max_message_bytes"`
}

type result struct {
	Name     string   `json:"name"`
	Passed   bool     `json:"passed"`
	Problems []string `json:"problems"`
}

func TestConformance(t *testing.T) {
	connPath, casesPath, reportPath := os.Getenv("INFERD_CONFORMANCE"), os.Getenv("INFERD_CONFORMANCE_CASES"), os.Getenv("INFERD_CONFORMANCE_REPORT")
	if connPath == "" || casesPath == "" || reportPath == "" {
		t.Skip("INFERD_CONFORMANCE, INFERD_CONFORMANCE_CASES and INFERD_CONFORMANCE_REPORT are not all set")
	}
	var conn connection
	readJSON(t, connPath, &conn)
	var file struct {
		Tokens map[string]string `json:"tokens"`
		Cases  []map[string]any  `json:"cases"`
	}
	readJSON(t, casesPath, &file)
	tokens := map[string]string{}
	for k, v := range conn.Tokens {
		tokens[k] = v
	}
	for k, v := range file.Tokens {
		tokens[k] = v
	}
	results := make([]result, 0, len(file.Cases))
	for _, c := range file.Cases {
		name, _ := c["name"].(string)
		start := time.Now()
		problems := runCase(c, conn, tokens)
		if problems == nil {
			problems = []string{}
		}
		results = append(results, result{Name: name, Passed: len(problems) == 0, Problems: problems})
		if len(problems) > 0 {
			t.Errorf("case %s: %v", name, problems)
		} else {
			t.Logf("case %s: passed (%s)", name, time.Since(start).Round(time.Millisecond))
		}
	}
	report, err := json.MarshalIndent(map[string]any{"language": "go", "results": results}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reportPath, append(report, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	if err := decoder.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// native: json.Number -> int64 (integers) or float64, recursively (as Python's json reads).
func native(v any) any {
	switch x := v.(type) {
	case json.Number:
		raw, _ := json.Marshal(x)
		n, err := inferd.DecodeJSON(raw)
		if err != nil {
			panic(err)
		}
		return n
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = native(item)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = native(item)
		}
		return out
	}
	return v
}

func str(m map[string]any, key string) string { s, _ := m[key].(string); return s }

func runCase(c map[string]any, conn connection, tokens map[string]string) (problems []string) {
	defer func() {
		if r := recover(); r != nil {
			problems = []string{fmt.Sprintf("runner panic: %v", r)}
		}
	}()
	c = native(c).(map[string]any)
	want := c["expect"].(map[string]any)
	secure := str(c, "server") == "secure"
	options := inferd.Options{MaxReceiveBytes: conn.MaxMessageBytes, Timeout: 30 * time.Second}
	if secure && c["plaintext"] != true {
		options.TLS = &inferd.TLS{CAFile: conn.CA, ServerName: conn.ServerName}
	}
	if name := str(c, "token"); name != "" {
		token, ok := tokens[name]
		if !ok {
			return []string{"unknown token " + name}
		}
		options.Token = token
	}
	if ms, ok := c["timeout_ms"].(int64); ok {
		options.Timeout = time.Duration(ms) * time.Millisecond
	}
	address := conn.Plain
	if secure {
		address = conn.Secure
	}
	client, err := inferd.Dial(address, options)
	if err != nil {
		return []string{err.Error()}
	}
	defer client.Close()
	problems, err = call(client, c, want)
	if err != nil {
		var e *inferd.Error
		if !errors.As(err, &e) {
			return []string{fmt.Sprintf("not an inferd error: %v", err)}
		}
		return checkError(e, want)
	}
	if code := str(want, "code"); code != "OK" {
		problems = append(problems, fmt.Sprintf("expected %s, the call succeeded", code))
	}
	return problems
}

func checkError(e *inferd.Error, want map[string]any) []string {
	var problems []string
	if got := inferd.CodeName(e.Code); got != str(want, "code") {
		problems = append(problems, fmt.Sprintf("code: expected %s, got %s (%s)", str(want, "code"), got, e.Message))
	}
	spec, _ := want["error"].(map[string]any)
	if reason, ok := spec["reason"].(string); ok && e.Reason != reason {
		problems = append(problems, fmt.Sprintf("reason: expected %s, got %s", reason, e.Reason))
	}
	for _, part := range list(spec["message_contains"]) {
		if !bytes.Contains([]byte(e.Message), []byte(part.(string))) {
			problems = append(problems, fmt.Sprintf("message %q lacks %q", e.Message, part))
		}
	}
	for _, part := range list(spec["message_excludes"]) {
		if bytes.Contains([]byte(e.Message), []byte(part.(string))) {
			problems = append(problems, fmt.Sprintf("message %q has %q", e.Message, part))
		}
	}
	details, _ := spec["details"].(map[string]any)
	for _, key := range sortedKeys(details) {
		if got, ok := e.Details[key]; !ok || !reflect.DeepEqual(got, details[key]) {
			problems = append(problems, fmt.Sprintf("details[%q]: expected %#v, got %#v", key, details[key], got))
		}
	}
	return problems
}

func list(v any) []any { l, _ := v.([]any); return l }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func input(spec map[string]any) (inferd.Input, error) {
	if v, ok := spec["json"]; ok {
		return inferd.JSON(v), nil
	}
	if v, ok := spec["json_text"].(string); ok {
		return inferd.JSONText(v), nil
	}
	if v, ok := spec["text"].(string); ok {
		return inferd.Text(v), nil
	}
	if b, ok := spec["blob"].(map[string]any); ok {
		data, err := base64.StdEncoding.DecodeString(str(b, "base64"))
		return inferd.Blob{Data: data, ContentType: str(b, "content_type")}, err
	}
	var tensors inferd.Tensors
	for _, item := range list(spec["tensors"]) {
		t, err := tensor(item.(map[string]any))
		if err != nil {
			return nil, err
		}
		tensors = append(tensors, t)
	}
	return tensors, nil
}

func shapeOf(v any) []int {
	shape := []int{}
	for _, d := range list(v) {
		shape = append(shape, int(d.(int64)))
	}
	return shape
}

// tensor builds a Go slice of the spec's dtype from its values, as a user would.
func tensor(spec map[string]any) (*inferd.Tensor, error) {
	values := list(spec["values"])
	var data any
	switch inferd.DType(str(spec, "dtype")) {
	case inferd.Bool:
		data = convert(values, func(v any) bool { return v.(bool) })
	case inferd.Int8:
		data = convert(values, func(v any) int8 { return int8(v.(int64)) })
	case inferd.Int16:
		data = convert(values, func(v any) int16 { return int16(v.(int64)) })
	case inferd.Int32:
		data = convert(values, func(v any) int32 { return int32(v.(int64)) })
	case inferd.Int64:
		data = convert(values, func(v any) int64 { return v.(int64) })
	case inferd.Uint8:
		data = convert(values, func(v any) uint8 { return uint8(v.(int64)) })
	case inferd.Uint16:
		data = convert(values, func(v any) uint16 { return uint16(v.(int64)) })
	case inferd.Uint32:
		data = convert(values, func(v any) uint32 { return uint32(v.(int64)) })
	case inferd.Uint64:
		data = convert(values, func(v any) uint64 {
			if u, ok := v.(uint64); ok {
				return u
			}
			return uint64(v.(int64))
		})
	case inferd.Float16:
		data = convert(values, func(v any) inferd.Half { return inferd.HalfFromFloat32(float32(toFloat(v))) })
	case inferd.Float32:
		data = convert(values, func(v any) float32 { return float32(toFloat(v)) })
	case inferd.Float64:
		data = convert(values, func(v any) float64 { return toFloat(v) })
	case inferd.String:
		data = convert(values, func(v any) string { return v.(string) })
	default:
		return nil, fmt.Errorf("unknown dtype %q", str(spec, "dtype"))
	}
	return inferd.NewTensor(str(spec, "name"), shapeOf(spec["shape"]), data)
}

func convert[T any](values []any, f func(any) T) []T {
	out := make([]T, len(values))
	for i, v := range values {
		out[i] = f(v)
	}
	return out
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("not a number: %#v", v))
}

func call(client *inferd.Client, c, want map[string]any) ([]string, error) {
	ctx := context.Background()
	model := str(c, "model")
	tolerance := 0.0
	if v, ok := want["tolerance"]; ok {
		tolerance = toFloat(v)
	}
	switch str(c, "call") {
	case "health":
		status, err := client.Health(ctx, str(c, "service"))
		if err != nil {
			return nil, err
		}
		if status != str(want, "health") {
			return []string{"health: " + status}, nil
		}
		return nil, nil
	case "setup", "load":
		setup := client.Setup
		if str(c, "call") == "load" {
			setup = client.Load
		}
		ms, err := setup(ctx, model)
		if err != nil {
			return nil, err
		}
		if ms < 0 {
			return []string{fmt.Sprintf("setup_ms %v", ms)}, nil
		}
		return nil, nil
	case "unload":
		return nil, client.Unload(ctx, model)
	case "models":
		models, err := client.Models(ctx)
		if err != nil {
			return nil, err
		}
		found := map[string]inferd.ModelInfo{}
		for _, m := range models {
			found[m.Name] = m
		}
		var problems []string
		expected := want["models"].(map[string]any)
		for _, name := range sortedKeys(expected) {
			info, ok := found[name]
			if !ok {
				problems = append(problems, "model "+name+" not listed")
				continue
			}
			seen := map[string]any{"state": info.State, "input_format": info.InputFormat, "unary": info.Unary,
				"streaming": info.Streaming, "batching": info.Batching != nil}
			fields := expected[name].(map[string]any)
			for _, key := range sortedKeys(fields) {
				if !reflect.DeepEqual(seen[key], fields[key]) {
					problems = append(problems, fmt.Sprintf("%s.%s: %#v, expected %#v", name, key, seen[key], fields[key]))
				}
			}
		}
		return problems, nil
	}
	in, err := input(c["input"].(map[string]any))
	if err != nil {
		return []string{"input: " + err.Error()}, nil
	}
	options := []inferd.CallOption{inferd.WithID(str(c, "id"))}
	if p, ok := c["parameters"].(map[string]any); ok {
		options = append(options, inferd.WithParameters(p))
	}
	wantID := str(c, "id")
	if id, ok := want["id"].(string); ok {
		wantID = id
	}
	if str(c, "call") == "infer" {
		result, err := client.Infer(ctx, model, in, options...)
		if err != nil {
			return nil, err
		}
		var problems []string
		if result.ID != wantID {
			problems = append(problems, fmt.Sprintf("id: %q", result.ID))
		}
		if spec, ok := want["output"].(map[string]any); ok {
			problems = append(problems, checkOutput(result.Output, spec, tolerance)...)
		}
		return problems, nil
	}
	// stream
	var chunks []any
	final := false
	cancelAfter, cancels := c["cancel_after"].(int64)
	for chunk, err := range client.Stream(ctx, model, in, options...) {
		if err != nil {
			return nil, err
		}
		if chunk.ID != wantID || chunk.Index != int64(len(chunks)) {
			return []string{fmt.Sprintf("chunk %d: id %q, index %d", len(chunks), chunk.ID, chunk.Index)}, nil
		}
		if chunk.Output != nil {
			v, err := chunk.Output.Value()
			if err != nil {
				return []string{"chunk output: " + err.Error()}, nil
			}
			chunks = append(chunks, v)
		}
		final = chunk.Final
		if cancels && int64(len(chunks)) == cancelAfter {
			break // cancels the call
		}
	}
	var problems []string
	if !final && !cancels {
		problems = append(problems, "no final message")
	}
	wantChunks := []any{}
	for _, w := range list(want["chunks"]) {
		wantChunks = append(wantChunks, w.(map[string]any)["text"])
	}
	if chunks == nil {
		chunks = []any{}
	}
	return append(problems, closeTo(chunks, wantChunks, 0, "chunks")...), nil
}

func short(s string) string {
	if len(s) > 300 {
		return s[:300]
	}
	return s
}

// closeTo: where got differs from want (floats within tolerance, relatively or absolutely),
// as tests/conformance_runner.py's _close.
func closeTo(got, want any, tolerance float64, where string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || !reflect.DeepEqual(sortedKeys(g), sortedKeys(w)) {
			return []string{short(fmt.Sprintf("%s: expected keys %v, got %#v", where, sortedKeys(w), got))}
		}
		var problems []string
		for _, key := range sortedKeys(w) {
			problems = append(problems, closeTo(g[key], w[key], tolerance, where+"."+key)...)
		}
		return problems
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{short(fmt.Sprintf("%s: expected %d items, got %#v", where, len(w), got))}
		}
		var problems []string
		for i := range w {
			problems = append(problems, closeTo(g[i], w[i], tolerance, fmt.Sprintf("%s[%d]", where, i))...)
		}
		return problems
	case float64:
		var g float64
		switch x := got.(type) {
		case float64:
			g = x
		case int64:
			g = float64(x)
		case uint64:
			g = float64(x)
		default:
			return []string{short(fmt.Sprintf("%s: expected %v, got %#v", where, want, got))}
		}
		if isClose(g, w, tolerance) {
			return nil
		}
	case int64:
		if g, ok := got.(float64); ok && g == float64(w) {
			return nil // JSON's 1.0 is 1
		}
		if reflect.DeepEqual(got, want) {
			return nil
		}
	default:
		if reflect.DeepEqual(got, want) {
			return nil
		}
	}
	return []string{short(fmt.Sprintf("%s: expected %#v, got %#v", where, want, got))}
}

// isClose is Python's math.isclose(a, b, rel_tol=tol, abs_tol=tol).
func isClose(a, b, tol float64) bool {
	if a == b {
		return true
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return false
	}
	diff := math.Abs(a - b)
	return diff <= math.Max(tol*math.Max(math.Abs(a), math.Abs(b)), tol)
}

func checkOutput(out *inferd.Output, want map[string]any, tolerance float64) []string {
	got, err := out.Value()
	if err != nil {
		return []string{"output: " + err.Error()}
	}
	if w, ok := want["json"]; ok {
		if out.Kind != inferd.KindJSON {
			return []string{fmt.Sprintf("output: expected JSON, got kind %d", out.Kind)}
		}
		return closeTo(got, w, tolerance, "output")
	}
	if w, ok := want["text"]; ok {
		if out.Kind != inferd.KindText {
			return []string{fmt.Sprintf("output: expected text, got kind %d", out.Kind)}
		}
		return closeTo(got, w, 0, "output")
	}
	if n, ok := want["text_length"].(int64); ok {
		if out.Kind == inferd.KindText && int64(len([]rune(out.Text))) == n {
			return nil
		}
		return []string{fmt.Sprintf("output: %d characters", len([]rune(out.Text)))}
	}
	if b, ok := want["blob"].(map[string]any); ok {
		if out.Kind != inferd.KindBlob {
			return []string{fmt.Sprintf("output: expected a blob, got kind %d", out.Kind)}
		}
		data, _ := base64.StdEncoding.DecodeString(str(b, "base64"))
		if bytes.Equal(out.Blob.Data, data) && out.Blob.ContentType == str(b, "content_type") {
			return nil
		}
		return []string{short(fmt.Sprintf("output: blob %d bytes %q", len(out.Blob.Data), out.Blob.ContentType))}
	}
	specs := list(want["tensors"])
	if out.Kind != inferd.KindTensors {
		return []string{fmt.Sprintf("output: expected tensors, got kind %d", out.Kind)}
	}
	var names, gotNames []string
	for _, s := range specs {
		names = append(names, str(s.(map[string]any), "name"))
	}
	for _, t := range out.Tensors {
		gotNames = append(gotNames, t.Name)
	}
	sort.Strings(names)
	sort.Strings(gotNames)
	if !reflect.DeepEqual(names, gotNames) {
		return []string{fmt.Sprintf("output: expected tensors %v, got %v", names, gotNames)}
	}
	var problems []string
	for _, s := range specs {
		spec := s.(map[string]any)
		t := out.Tensor(str(spec, "name"))
		wantShape := shapeOf(spec["shape"])
		if string(t.DType) != str(spec, "dtype") || !reflect.DeepEqual(t.Shape, wantShape) {
			problems = append(problems, fmt.Sprintf("tensor %s: %s%v, expected %s%v", t.Name, t.DType, t.Shape, str(spec, "dtype"), wantShape))
			continue
		}
		wantValues := list(spec["values"])
		if len(wantValues) > 0 && (t.DType == inferd.Float16 || t.DType == inferd.Float32 || t.DType == inferd.Float64) {
			for i, v := range wantValues {
				wantValues[i] = toFloat(v)
			}
		}
		if wantValues == nil {
			wantValues = []any{}
		}
		problems = append(problems, closeTo(elements(t), wantValues, tolerance, "tensor "+t.Name)...)
	}
	return problems
}

// elements: a tensor's values as JSON-like Go values (ints as int64, floats as float64).
func elements(t *inferd.Tensor) []any {
	out := []any{}
	switch d := t.Data.(type) {
	case []bool:
		for _, v := range d {
			out = append(out, v)
		}
	case []string:
		for _, v := range d {
			out = append(out, v)
		}
	case []int64:
		for _, v := range d {
			out = append(out, v)
		}
	case []uint64:
		for _, v := range d {
			if v > math.MaxInt64 {
				out = append(out, v)
			} else {
				out = append(out, int64(v))
			}
		}
	case []inferd.Half, []float32, []float64:
		for _, v := range t.Floats() {
			out = append(out, v)
		}
	default:
		for _, v := range t.Floats() { // every other integer type fits a float64 exactly
			out = append(out, int64(v))
		}
	}
	return out
}
