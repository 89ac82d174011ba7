package inferd

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The error classes of inferd (Error.Reason): the ErrorInfo reason the server sends, or the
// status code's class when there is none.
const (
	ReasonInvalidInput      = "InvalidInput"
	ReasonRecordError       = "RecordError"
	ReasonTensorError       = "TensorError"
	ReasonModelNotFound     = "ModelNotFound"
	ReasonModelNotReady     = "ModelNotReady"
	ReasonModelFailed       = "ModelFailed"
	ReasonResourceExhausted = "ResourceExhausted"
	ReasonDeadlineExceeded  = "DeadlineExceeded"
	ReasonCancelled         = "Cancelled"
	ReasonUnauthenticated   = "Unauthenticated"
	ReasonPermissionDenied  = "PermissionDenied"
	ReasonUnavailable       = "Unavailable"
	ReasonUnimplemented     = "Unimplemented"
	ReasonInternalError     = "InternalError"
	// ReasonUnknown: a status code inferd has no class for.
	ReasonUnknown = "InferdError"
)

// The status code each class is sent with.
var reasonCodes = map[string]codes.Code{
	ReasonInvalidInput: codes.InvalidArgument, ReasonRecordError: codes.InvalidArgument,
	ReasonTensorError: codes.InvalidArgument, ReasonModelNotFound: codes.NotFound,
	ReasonModelNotReady: codes.FailedPrecondition, ReasonModelFailed: codes.FailedPrecondition,
	ReasonResourceExhausted: codes.ResourceExhausted, ReasonDeadlineExceeded: codes.DeadlineExceeded,
	ReasonCancelled: codes.Canceled, ReasonUnauthenticated: codes.Unauthenticated,
	ReasonPermissionDenied: codes.PermissionDenied, ReasonUnavailable: codes.Unavailable,
	ReasonUnimplemented: codes.Unimplemented, ReasonInternalError: codes.Internal,
}

// The class of a status code when the server sent no ErrorInfo of its own (or an
// ErrorInfo whose class does not go with the code).
var codeReasons = map[codes.Code]string{
	codes.InvalidArgument: ReasonInvalidInput, codes.NotFound: ReasonModelNotFound,
	codes.FailedPrecondition: ReasonModelNotReady, codes.ResourceExhausted: ReasonResourceExhausted,
	codes.DeadlineExceeded: ReasonDeadlineExceeded, codes.Canceled: ReasonCancelled,
	codes.Unauthenticated: ReasonUnauthenticated, codes.PermissionDenied: ReasonPermissionDenied,
	codes.Unavailable: ReasonUnavailable, codes.Unimplemented: ReasonUnimplemented,
	codes.Internal: ReasonInternalError,
}

// The ErrorInfo metadata that are numbers; every other detail is a string.
var integerDetails = []string{"record", "offset", "retry_after_ms"}

// Error is a failed call: its gRPC status code, the class of the failure (Reason, one of the
// Reason* constants), the server's message, and the structured facts the server attached in
// the ErrorInfo of grpc-status-details-bin (Details: "record", "offset" and "retry_after_ms" as
// int64, the rest, such as "model", "path", "tensor", as strings).
type Error struct {
	Code    codes.Code
	Reason  string
	Message string
	Details map[string]any
	// Domain is the ErrorInfo's domain ("inferd" for inferd's own errors); empty without one.
	Domain string
	status *status.Status
}

func (e *Error) Error() string {
	return fmt.Sprintf("inferd: %s (%s): %s", CodeName(e.Code), e.Reason, e.Message)
}

// GRPCStatus makes status.FromError and status.Code work on an *Error.
func (e *Error) GRPCStatus() *status.Status {
	if e.status == nil {
		return status.New(e.Code, e.Message)
	}
	return e.status
}

// Int is a numeric detail ("record", "offset", "retry_after_ms"), and whether it is there.
func (e *Error) Int(key string) (int64, bool) {
	v, ok := e.Details[key].(int64)
	return v, ok
}

// String is a string detail ("model", "path", "tensor", ...), "" when absent.
func (e *Error) String(key string) string {
	v, _ := e.Details[key].(string)
	return v
}

// RetryAfterMs is how long to wait before retrying a RESOURCE_EXHAUSTED call (0 otherwise).
func (e *Error) RetryAfterMs() int64 {
	v, _ := e.Int("retry_after_ms")
	return v
}

// IsReason reports whether err is an inferd *Error of the given class.
func IsReason(err error, reason string) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == reason
}

// CodeName is the status code's name as gRPC spells it ("INVALID_ARGUMENT", "OK", ...).
func CodeName(code codes.Code) string {
	if name, ok := codeNames[code]; ok {
		return name
	}
	return "CODE(" + strconv.Itoa(int(code)) + ")"
}

var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL",
	codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

// fromRPC turns the error of a gRPC call into an *Error (trailers: the call's trailing
// metadata, for the retry-after-ms and trace-id trailers). Errors that are no gRPC status
// (the client's own, such as an unencodable input) are returned as they are.
func fromRPC(err error, trailers metadata.MD) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			st = status.New(codes.DeadlineExceeded, err.Error())
		case errors.Is(err, context.Canceled):
			st = status.New(codes.Canceled, err.Error())
		default:
			return err
		}
	}
	return errorFromStatus(st, trailers)
}

// errorFromStatus rebuilds the inferd error of a status: its class from the ErrorInfo's reason
// (domain "inferd") where that class goes with the code, else the code's class; its details
// from the ErrorInfo's metadata, with a RetryInfo's delay and the retry-after-ms and trace-id
// trailers where the metadata lack them.
func errorFromStatus(st *status.Status, trailers metadata.MD) *Error {
	e := &Error{Code: st.Code(), Message: st.Message(), Details: map[string]any{}, status: st}
	if e.Message == "" {
		e.Message = CodeName(e.Code)
	}
	name := ""
	strings := map[string]string{}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			for k, v := range d.GetMetadata() {
				strings[k] = v
			}
			if d.GetDomain() == "inferd" {
				name = d.GetReason()
			}
			if _, ok := strings["reason"]; !ok {
				strings["reason"] = d.GetReason()
			}
			if e.Domain == "" {
				e.Domain = d.GetDomain()
			}
		case *errdetails.RetryInfo:
			if _, ok := strings["retry_after_ms"]; !ok && d.GetRetryDelay() != nil {
				strings["retry_after_ms"] = strconv.FormatInt(d.GetRetryDelay().AsDuration().Milliseconds(), 10)
			}
		}
	}
	if v := trailers.Get("trace-id"); len(v) > 0 {
		strings["trace_id"] = v[0]
	}
	if v := trailers.Get("retry-after-ms"); len(v) > 0 {
		strings["retry_after_ms"] = v[0]
	}
	for k, v := range strings {
		e.Details[k] = v
	}
	for _, key := range integerDetails {
		if text, ok := strings[key]; ok {
			if n, err := strconv.ParseInt(text, 10, 64); err == nil {
				e.Details[key] = n
			}
		}
	}
	if code, ok := reasonCodes[name]; ok && code == e.Code {
		e.Reason = name
	} else if reason, ok := codeReasons[e.Code]; ok {
		e.Reason = reason
	} else {
		e.Reason = ReasonUnknown
	}
	if e.Reason == ReasonResourceExhausted {
		if _, ok := e.Details["retry_after_ms"].(int64); !ok {
			e.Details["retry_after_ms"] = int64(100)
		}
	}
	return e
}
