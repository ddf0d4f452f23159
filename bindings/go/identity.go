// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <stdlib.h>
#include <mesh/mesh.h>
*/
import "C"

import (
	"encoding/json"
	"math"
	"time"
	"unsafe"
)

// Flags for CAIssue; all but IssueDefault break the X.509-SVID rules on
// purpose, for negative tests.
const (
	IssueDefault = uint(C.MESH_CA_ISSUE_DEFAULT)
	IssueAsCA    = uint(C.MESH_CA_ISSUE_AS_CA)
	IssueNoURI   = uint(C.MESH_CA_ISSUE_NO_URI)
	IssueTwoURIs = uint(C.MESH_CA_ISSUE_TWO_URIS)
	IssueChain   = uint(C.MESH_CA_ISSUE_CHAIN)
)

// DefaultCALifetimeS is the CA lifetime meshctl and the Python binding use
// when none is given (MESH_CA_LIFETIME_DEFAULT_S: 10 years).
const DefaultCALifetimeS int64 = C.MESH_CA_LIFETIME_DEFAULT_S

// CAInit creates a development CA (ECDSA P-256) for trustDomain, valid for
// lifetimeS seconds from now, written as PEM (key file mode 0600).
func CAInit(trustDomain string, lifetimeS int64, certPath, keyPath string) error {
	td, cp, kp := C.CString(trustDomain), C.CString(certPath), C.CString(keyPath)
	defer C.free(unsafe.Pointer(td))
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(kp))
	var st C.mesh_status_t
	if rc := C.mesh_ca_init(td, C.int64_t(lifetimeS), cp, kp, &st); rc != 0 {
		return newError("ca init", rc, &st)
	}
	return nil
}

// CAIssue issues an X.509-SVID for spiffeID signed by the CA, valid from
// notBefore to notAfter (Unix seconds; 0, 0: a minute ago to an hour from
// now), and writes the chain and a fresh P-256 key as PEM.
func CAIssue(caCert, caKey, spiffeID string, notBefore, notAfter int64,
	flags uint, certPath, keyPath string) error {
	cc, ck, id := C.CString(caCert), C.CString(caKey), C.CString(spiffeID)
	cp, kp := C.CString(certPath), C.CString(keyPath)
	for _, p := range []*C.char{cc, ck, id, cp, kp} {
		defer C.free(unsafe.Pointer(p))
	}
	var st C.mesh_status_t
	rc := C.mesh_ca_issue(cc, ck, id, C.int64_t(notBefore), C.int64_t(notAfter),
		C.uint(flags), cp, kp, &st)
	if rc != 0 {
		return newError("ca issue", rc, &st)
	}
	return nil
}

// ValidateSpiffeID checks id against the SPIFFE ID specification; the
// error (ErrSpiffeID) says what is wrong.
func ValidateSpiffeID(id string) error {
	cs := C.CString(id)
	defer C.free(unsafe.Pointer(cs))
	var st C.mesh_status_t
	if rc := C.mesh_spiffe_id_validate(cs, &st); rc != 0 {
		return newError("spiffe id", rc, &st)
	}
	return nil
}

// ParseSpiffeID splits a valid SPIFFE ID into trust domain and path ("" or
// "/a/b").
func ParseSpiffeID(id string) (trustDomain, path string, err error) {
	cs := C.CString(id)
	defer C.free(unsafe.Pointer(cs))
	var td [C.MESH_TRUST_DOMAIN_MAX + 1]C.char
	var p [C.MESH_SPIFFE_ID_MAX + 1]C.char
	var st C.mesh_status_t
	rc := C.mesh_spiffe_id_parse(cs, &td[0], C.size_t(len(td)), &p[0],
		C.size_t(len(p)), &st)
	if rc != 0 {
		return "", "", newError("spiffe id", rc, &st)
	}
	return C.GoString(&td[0]), C.GoString(&p[0]), nil
}

// MatchSpiffeID reports whether id matches pattern: "*", an exact ID,
// "td/prefix*" (Istio principal style) or "spiffe://td" (any ID of td).
func MatchSpiffeID(pattern, id string) bool {
	cp, ci := C.CString(pattern), C.CString(id)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(ci))
	return C.mesh_spiffe_match(cp, ci) == 1
}

// SelfID is this context's SPIFFE ID ("" with no SVID loaded).
func (m *Mesh) SelfID() string {
	cm, ok := m.use()
	if !ok {
		return ""
	}
	defer m.done()
	var buf [C.MESH_SPIFFE_ID_MAX + 1]C.char
	if C.mesh_self_id(cm, &buf[0], C.size_t(len(buf))) != 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

// JWTSVID is a JWT-SVID for audience from the SPIFFE Workload API (config
// identity.source "workload_api"), cached by the library until shortly
// before it expires: send it as "Authorization: Bearer <token>".
func (m *Mesh) JWTSVID(audience string) (string, error) {
	cm, ok := m.use()
	if !ok {
		return "", closedErr("jwt svid")
	}
	defer m.done()
	ca := C.CString(audience)
	defer C.free(unsafe.Pointer(ca))
	buf := make([]C.char, 16384)
	var st C.mesh_status_t
	if rc := C.mesh_jwt_svid(cm, ca, &buf[0], C.size_t(len(buf)), &st); rc != 0 {
		return "", newError("jwt svid", rc, &st)
	}
	return C.GoString(&buf[0]), nil
}

// ValidateJWTSVID has the SPIFFE Workload API agent validate a JWT-SVID
// for audience (ValidateJWTSVID; config identity.source "workload_api"):
// the token's SPIFFE ID and its claims.  A token the agent refuses is an
// *Error with Code ErrDenied and the agent's reason.  Not cached: one call
// to the agent per token (for request authentication with cached keys use
// the config's "authn" section).
func (m *Mesh) ValidateJWTSVID(token, audience string) (string, map[string]any, error) {
	cm, ok := m.use()
	if !ok {
		return "", nil, closedErr("validate jwt svid")
	}
	defer m.done()
	ct, ca := C.CString(token), C.CString(audience)
	defer C.free(unsafe.Pointer(ct))
	defer C.free(unsafe.Pointer(ca))
	id := make([]C.char, C.MESH_SPIFFE_ID_MAX+1)
	claims := make([]C.char, 65536)
	var st C.mesh_status_t
	if rc := C.mesh_validate_jwt_svid(cm, ct, ca, &id[0], C.size_t(len(id)),
		&claims[0], C.size_t(len(claims)), &st); rc != 0 {
		return "", nil, newError("validate jwt svid", rc, &st)
	}
	var cl map[string]any
	if err := json.Unmarshal([]byte(C.GoString(&claims[0])), &cl); err != nil {
		return "", nil, err
	}
	return C.GoString(&id[0]), cl, nil
}

// SVIDExpiresIn is the time until this context's SVID expires (negative
// once expired); ok is false with no SVID loaded.
func (m *Mesh) SVIDExpiresIn() (d time.Duration, ok bool) {
	cm, live := m.use()
	if !live {
		return 0, false
	}
	defer m.done()
	s := int64(C.mesh_svid_expires_in(cm))
	if s == math.MinInt64 {
		return 0, false
	}
	return time.Duration(s) * time.Second, true
}

// ReloadIdentity re-reads the SVID and bundle files now (the library also
// does so when they change).  On failure the old identity stays in use.
func (m *Mesh) ReloadIdentity() error {
	cm, ok := m.use()
	if !ok {
		return closedErr("reload identity")
	}
	defer m.done()
	var st C.mesh_status_t
	if rc := C.mesh_identity_reload(cm, &st); rc != 0 {
		return newError("reload identity", rc, &st)
	}
	return nil
}
