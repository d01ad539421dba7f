// Region lifetime on the Node-API side: reference counts, the weak view
// list, and the per-env list of mapped regions that lets map() unmap garbage
// without waiting for finalizers (see native-notes/README.md, "Garbage is
// unmapped on the next map()"). Only touched from the env that made a region.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "mapping.h"

namespace memjob {

// The regions one env has mapped and not yet unmapped (its instance data).
// Unmapping used to wait for finalizers, and Node runs those only when the
// event loop turns: a loop of mapped loads that never yields (or whose
// awaits all resolve at once) then kept every mapping until the process hit
// vm.max_map_count and aborted. So map() sweeps this list: a region whose
// handle and views the garbage collector has already taken (their weak
// references read empty) is unmapped there and then; its finalizers only free
// the bookkeeping later.
struct MappedList {
  std::vector<Region*> regions;
  size_t maps_since_sweep = 0;
  // Bytes of those regions: a mapping of a deleted file (a Queue item's or a
  // run's dump) keeps its pages in /dev/shm until it is unmapped.
  uint64_t bytes = 0;
  // Regions and bytes above which map() asks for a full collection first.
  size_t collect_above = 0;
  uint64_t collect_bytes_above = 0;
  ~MappedList() {
    for (Region* region : regions) region->list = nullptr;
  }
};

// Mapped regions in the whole process (every thread) may not exceed this:
// half of vm.max_map_count.
size_t MappingLimit();

// A region that was just mapped joins its env's list and the process count.
void Track(MappedList* list, Region* region);
// munmap, once, keeping the count and the env's list right.
int Unmap(Region* region);
// Drops one reference; the last one releases the address range.
void Release(Region* region);
// Deletes the weak view references, detaching the views still alive first
// when `detach` is set (close()).
void DeleteViewRefs(napi_env env, Region* region, bool detach);
// Forgets views that the garbage collector already took.
void PruneDeadViews(napi_env env, Region* region);
// Before each map(): unmaps what is garbage, collects when mappings pile up.
// False when the process is at the mapping limit even so.
bool ReclaimBeforeMap(napi_env env, MappedList* list);

}  // namespace memjob
