package inferd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"
)

// ToStruct turns a Go map into a protobuf Struct (a request's parameters). Values may be nil,
// bool, string, any Go integer or float, json.Number, a slice or array of these, or a map with
// string keys; Struct carries every number as a double.
func ToStruct(values map[string]any) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(values))}
	for key, v := range values {
		value, err := ToValue(v)
		if err != nil {
			return nil, fmt.Errorf("inferd: parameter %q: %w", key, err)
		}
		s.Fields[key] = value
	}
	return s, nil
}

// ToValue turns one Go value into a protobuf Value (see ToStruct).
func ToValue(v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case *structpb.Value:
		return x, nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case string:
		return structpb.NewStringValue(x), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, err
		}
		return structpb.NewNumberValue(f), nil
	case map[string]any:
		s, err := ToStruct(x)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	case []any:
		list := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, item := range x {
			value, err := ToValue(item)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			list.Values[i] = value
		}
		return structpb.NewListValue(list), nil
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return structpb.NewNumberValue(float64(r.Int())), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return structpb.NewNumberValue(float64(r.Uint())), nil
	case reflect.Float32, reflect.Float64:
		return structpb.NewNumberValue(r.Float()), nil
	case reflect.Bool:
		return structpb.NewBoolValue(r.Bool()), nil
	case reflect.String:
		return structpb.NewStringValue(r.String()), nil
	case reflect.Slice, reflect.Array:
		if r.Kind() == reflect.Slice && r.IsNil() {
			return structpb.NewNullValue(), nil
		}
		items := make([]any, r.Len())
		for i := range items {
			items[i] = r.Index(i).Interface()
		}
		return ToValue(items)
	case reflect.Map:
		if r.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map keys must be strings, not %s", r.Type().Key())
		}
		if r.IsNil() {
			return structpb.NewNullValue(), nil
		}
		m := make(map[string]any, r.Len())
		for it := r.MapRange(); it.Next(); {
			m[it.Key().String()] = it.Value().Interface()
		}
		return ToValue(m)
	case reflect.Pointer, reflect.Interface:
		if r.IsNil() {
			return structpb.NewNullValue(), nil
		}
		return ToValue(r.Elem().Interface())
	}
	return nil, fmt.Errorf("cannot send a %T as a protobuf Value", v)
}

// FromStruct turns a protobuf Struct into a Go map: numbers that are whole (and within ±2^53)
// come back as int64, other numbers as float64, lists as []any, structs as map[string]any.
func FromStruct(s *structpb.Struct) map[string]any {
	out := make(map[string]any, len(s.GetFields()))
	for key, value := range s.GetFields() {
		out[key] = FromValue(value)
	}
	return out
}

// FromValue turns one protobuf Value into a Go value (see FromStruct).
func FromValue(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StructValue:
		return FromStruct(k.StructValue)
	case *structpb.Value_ListValue:
		out := make([]any, len(k.ListValue.GetValues()))
		for i, item := range k.ListValue.GetValues() {
			out[i] = FromValue(item)
		}
		return out
	}
	return nil
}

// DecodeJSON parses JSON into native Go values: objects as map[string]any, arrays as []any,
// numbers written as integers as int64 (uint64 above int64's range), other numbers as
// float64, and strings, bools and null as string, bool and nil.
func DecodeJSON(data []byte) (any, error) {
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	var v any
	if err := decoder.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := decoder.Token(); err == nil {
		return nil, fmt.Errorf("inferd: trailing data after the JSON value")
	}
	return nativeNumbers(v)
}

func nativeNumbers(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return number(x)
	case []any:
		for i, item := range x {
			n, err := nativeNumbers(item)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
	case map[string]any:
		for key, item := range x {
			n, err := nativeNumbers(item)
			if err != nil {
				return nil, err
			}
			x[key] = n
		}
	}
	return v, nil
}

func number(n json.Number) (any, error) {
	text := n.String()
	if !bytes.ContainsAny([]byte(text), ".eE") {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(text, 10, 64); err == nil {
			return u, nil
		}
	}
	return strconv.ParseFloat(text, 64)
}
