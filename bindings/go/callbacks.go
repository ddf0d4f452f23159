// SPDX-License-Identifier: Apache-2.0

package mesh

// C calls back into Go through these exported functions.  C never holds a
// Go pointer: user data is a runtime/cgo.Handle passed as an integer.
// (A file with //export may only declare in its preamble.)

/*
#include <stdint.h>
#include <mesh/discovery.h>
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

//export meshGoLog
func meshGoLog(level C.int, line *C.char, user C.uintptr_t) {
	fn, ok := cgo.Handle(user).Value().(func(int, string))
	if !ok {
		return
	}
	fn(int(level), C.GoString(line))
}

//export meshGoConfigError
func meshGoConfigError(text *C.char, user C.uintptr_t) {
	p, ok := cgo.Handle(user).Value().(*[]string)
	if !ok {
		return
	}
	*p = append(*p, C.GoString(text))
}

//export meshGoEndpoints
func meshGoEndpoints(service *C.char, eps unsafe.Pointer, user C.uintptr_t) {
	w, ok := cgo.Handle(user).Value().(*watch)
	if !ok {
		return
	}
	w.fn(C.GoString(service), convertEndpoints((*C.mesh_endpoints_t)(eps)))
}
