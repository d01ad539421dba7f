// The operating-system half of the addon: plain C++ over mmap(2) and friends,
// with no Node-API types, so it can be read (and tested) on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <node_api.h>

namespace memjob {

struct MappedList;

// One mmap(2) call's worth of address space. JavaScript sees it through an
// External handle (one reference) and through any number of ArrayBuffer views
// (one reference each). The address range is released when the last
// reference goes away; close (unmap) may release it earlier, but only after
// every live view has been detached, and so may the next map() of its env
// once the collector has taken the handle and every view; either way no
// JavaScript object can reach it.
struct Region {
  uint8_t* addr = nullptr;
  size_t length = 0;
  bool unmapped = false;
  size_t refs = 0;
  // Weak references to the views made from this region, so that unmap can
  // detach them. Only touched on the thread (env) that created the region.
  std::vector<napi_ref> views;
  // A weak reference to the handle, and the env's list of mapped regions that
  // holds this one (null once unmapped): with the view references, they let
  // the next map() call unmap a region whose handle and views the garbage
  // collector has taken, before their finalizers get a turn (regions.cc).
  napi_ref handle_ref = nullptr;
  MappedList* list = nullptr;
  size_t slot = 0;
  // The mapped file's identity (fstat at map time), so that a later look at
  // the file by its path can tell whether the path still names this file.
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool identified = false;
};

// Returns 0 or an errno value.
int MapFile(int fd, uint64_t offset, uint64_t length, bool shared, Region* out);
// True in *hole when the file at `path` is still the region's file and holds
// no data in [offset, offset + length) (SEEK_DATA: a hole, or past its end),
// so reading that range would only give zeros. False when it may hold data,
// or when the path names another file now. Returns 0 or an errno value.
int RangeIsHole(const Region* region, const char* path, uint64_t offset, uint64_t length, bool* hole);
int UnmapRegion(Region* region);
// Each of these rounds [offset, offset + length) out to whole pages inside
// the region; callers pass ranges already checked against region->length.
int SyncRange(const Region* region, uint64_t offset, uint64_t length, bool async);
int AdviseRange(const Region* region, uint64_t offset, uint64_t length, int advice);
int CountResidentPages(const Region* region, uint64_t offset, uint64_t length,
                       uint64_t* resident, uint64_t* total);
size_t PageSize();

// flock(2) without blocking: operation is LOCK_SH, LOCK_EX or LOCK_UN (LOCK_NB
// is added here, so the event loop is never blocked). Sets *acquired to false
// when another open file description holds a conflicting lock (EWOULDBLOCK);
// returns 0 or another errno value. Retries on EINTR.
int TryFlock(int fd, int operation, bool* acquired);

}  // namespace memjob
