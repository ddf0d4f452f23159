// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <mesh/error.h>
*/
import "C"

import "fmt"

// Code is a libmesh error code (include/mesh/error.h): 0 is success, errors
// are negative and never renumbered.  A Code is itself an error, so
//
//	errors.Is(err, mesh.ErrPeerID)
//
// tells a failure's kind whatever wraps it.
type Code int

// The codes of include/mesh/error.h.
const (
	OK                 Code = 0
	ErrInvalidArg      Code = -1
	ErrNoMem           Code = -2
	ErrConfig          Code = -3
	ErrIO              Code = -4
	ErrClosed          Code = -5
	ErrWantRead        Code = -6
	ErrWantWrite       Code = -7
	ErrTimeout         Code = -8
	ErrConnect         Code = -9
	ErrTLS             Code = -10
	ErrPlaintextPeer   Code = -11
	ErrCertUntrusted   Code = -12
	ErrCertExpired     Code = -13
	ErrCertNotYetValid Code = -14
	ErrPeerID          Code = -15
	ErrTrustDomain     Code = -16
	ErrNoPeerCert      Code = -17
	ErrKeyMismatch     Code = -18
	ErrPEM             Code = -19
	ErrSVID            Code = -20
	ErrSpiffeID        Code = -21
	ErrPeerClosed      Code = -22
	ErrReset           Code = -23
	ErrNoEndpoints     Code = -24
	ErrUnknownService  Code = -25
	ErrCircuitOpen     Code = -26
	ErrRetryBudget     Code = -27
	ErrDeadline        Code = -28
	ErrDenied          Code = -29
	ErrHTTPParse       Code = -30
	ErrHTTPTooLarge    Code = -31
	ErrDiscovery       Code = -32
	ErrNotFound        Code = -33
	ErrUnsupported     Code = -34
	ErrInternal        Code = -35
	ErrParse           Code = -36
	ErrFDLimit         Code = -37
	ErrBuffer          Code = -38
	ErrUpstream        Code = -39
	ErrGRPCStatus      Code = -40 // a gRPC call ended with a non-OK status
	ErrMsgTooLarge     Code = -41
	ErrCancelled       Code = -42
	ErrGRPCProtocol    Code = -43
	lastCode                = ErrGRPCProtocol
)

// Name is the symbolic name, e.g. "MESH_ERR_TIMEOUT".
func (c Code) Name() string { return C.GoString(C.mesh_code_name(C.int(c))) }

// String is the library's English text for the code.
func (c Code) String() string { return C.GoString(C.mesh_strerror(C.int(c))) }

// Error makes a bare Code usable as an error (and as an errors.Is target).
func (c Code) Error() string { return "mesh: " + c.String() }

// Timeout reports whether the code is a timeout (net.Error style).
func (c Code) Timeout() bool { return c == ErrTimeout || c == ErrDeadline }

// Error is a libmesh failure: the code and the detail the library wrote
// into mesh_status_t (which file, which peer, which check).
type Error struct {
	Code    Code
	Op      string // the Go method that failed, e.g. "dial"
	Message string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.String()
	}
	if e.Op != "" {
		return fmt.Sprintf("mesh %s: %s: %s", e.Op, e.Code.Name(), msg)
	}
	return fmt.Sprintf("mesh: %s: %s", e.Code.Name(), msg)
}

// Is matches a Code target: errors.Is(err, mesh.ErrTimeout).
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && c == e.Code
}

// Timeout implements net.Error.
func (e *Error) Timeout() bool { return e.Code.Timeout() }

// Temporary implements the deprecated half of net.Error: timeouts only.
func (e *Error) Temporary() bool { return e.Code.Timeout() }

// newError builds an *Error from a return code and optional status.
func newError(op string, rc C.int, st *C.mesh_status_t) error {
	e := &Error{Code: Code(rc), Op: op}
	if st != nil && st.code == rc {
		e.Message = C.GoString(&st.message[0])
	}
	return e
}
