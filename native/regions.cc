// Region lifetime on the Node-API side (regions.h).
#include "regions.h"

#include <algorithm>
#include <atomic>
#include <fstream>

namespace memjob {
namespace {

// Sweep at most once per this many maps (or per eighth of the list, if longer),
// so that a process holding many live mappings does not pay O(n) per map.
constexpr size_t kSweepEvery = 64;
// A full collection is asked for when the mapped regions of one env pass
// this many (or this many bytes), or twice as many as survived the last one.
// The scavenger alone does not always do: objects that survive one (a value
// kept for a while, a handle a WeakRef points to) wait for a full collection.
constexpr size_t kCollectFloor = 1024;
constexpr uint64_t kCollectBytesFloor = uint64_t{256} << 20;

// Mapped regions in the whole process (every thread), against the limit.
std::atomic<size_t> mapped_regions{0};

// Removes a region from its env's list (it is unmapped, or being freed).
void Forget(Region* region) {
  MappedList* list = region->list;
  if (list == nullptr) return;
  Region* last = list->regions.back();
  list->regions[region->slot] = last;
  last->slot = region->slot;
  list->regions.pop_back();
  list->bytes -= region->length;
  region->list = nullptr;
}

}  // namespace

// Half of vm.max_map_count (65530 by default): one region is one kernel
// mapping, and malloc, V8 and thread stacks need the rest. Past the limit the
// kernel refuses mmap with ENOMEM, and the first to hit it may be malloc,
// which aborts the process (std::bad_alloc) instead of failing one call.
size_t MappingLimit() {
  static const size_t limit = [] {
    unsigned long long max_map_count = 65530;
    std::ifstream file("/proc/sys/vm/max_map_count");
    unsigned long long value = 0;
    if (file >> value && value >= 1024) max_map_count = value;
    return static_cast<size_t>(max_map_count / 2);
  }();
  return limit;
}

int Unmap(Region* region) {
  if (region->unmapped) return 0;
  Forget(region);
  mapped_regions--;
  return UnmapRegion(region);
}

void Release(Region* region) {
  if (--region->refs > 0) return;
  Unmap(region);  // no-op when close() or a sweep already unmapped it
  delete region;
}

void DeleteViewRefs(napi_env env, Region* region, bool detach) {
  for (napi_ref ref : region->views) {
    napi_value view = nullptr;
    if (detach && napi_get_reference_value(env, ref, &view) == napi_ok && view != nullptr)
      napi_detach_arraybuffer(env, view);
    napi_delete_reference(env, ref);
  }
  region->views.clear();
}

// Deleting the references of dead views keeps a long-lived mapping that hands
// out many short-lived views from growing its list forever.
void PruneDeadViews(napi_env env, Region* region) {
  size_t live = 0;
  for (napi_ref ref : region->views) {
    napi_value view = nullptr;
    napi_get_reference_value(env, ref, &view);
    if (view == nullptr) {
      napi_delete_reference(env, ref);
    } else {
      region->views[live++] = ref;
    }
  }
  region->views.resize(live);
}

namespace {

bool Reachable(napi_env env, napi_ref ref) {
  napi_value value = nullptr;
  return ref != nullptr && napi_get_reference_value(env, ref, &value) == napi_ok && value != nullptr;
}

// Unmaps every region of this env that no JavaScript object can reach any
// more: its handle and all its views are gone (their weak references read
// empty once the collector has taken them, before any finalizer runs).
// Nothing is detached: there is nothing left to detach.
void Sweep(napi_env env, MappedList* list) {
  list->maps_since_sweep = 0;
  for (size_t i = 0; i < list->regions.size();) {
    Region* region = list->regions[i];
    bool reachable = Reachable(env, region->handle_ref);
    for (size_t v = 0; !reachable && v < region->views.size(); v++) reachable = Reachable(env, region->views[v]);
    if (reachable) {
      i++;
      continue;
    }
    DeleteViewRefs(env, region, false);
    if (region->handle_ref != nullptr) napi_delete_reference(env, region->handle_ref);
    region->handle_ref = nullptr;
    Unmap(region);  // moves the list's last region into slot i
  }
  // Thresholds follow what is alive down too (closed memmaps, say).
  list->collect_above = std::min(list->collect_above, 2 * list->regions.size());
  list->collect_bytes_above = std::min(list->collect_bytes_above, 2 * list->bytes);
}

// A full garbage collection, now. Node-API has no call for it, but V8
// collects everything at once when the external memory it is told about
// jumps past half the heap limit (Heap::ReportExternalMemoryPressure; V8's
// own test Regress51719 uses this): the count is raised and put back at
// once. Only used when mapped regions pile up, so at most once per
// kCollectFloor maps (or kCollectBytesFloor bytes mapped), or per doubling
// of what is really alive.
void Collect(napi_env env) {
  constexpr int64_t kJump = int64_t{1} << 50;
  int64_t unused;
  napi_adjust_external_memory(env, kJump, &unused);
  napi_adjust_external_memory(env, -kJump, &unused);
}

}  // namespace

// Before each map(): unmap what is garbage, and keep the process under the
// mapping limit. False when the limit is reached even so (the caller throws).
bool ReclaimBeforeMap(napi_env env, MappedList* list) {
  if (++list->maps_since_sweep >= std::max(kSweepEvery, list->regions.size() / 8)) Sweep(env, list);
  auto many = [list] { return list->regions.size() >= std::max(kCollectFloor, list->collect_above); };
  auto large = [list] { return list->bytes >= std::max(kCollectBytesFloor, list->collect_bytes_above); };
  // Few but large regions (a big file mapped, dropped, mapped again): the collector has often taken
  // the dropped views already (after an idle moment, or gc()), and a sweep is enough.
  if (large() && !many()) Sweep(env, list);
  if (many() || large() || mapped_regions >= MappingLimit()) {
    Collect(env);
    Sweep(env, list);
    list->collect_above = 2 * list->regions.size();
    list->collect_bytes_above = 2 * list->bytes;
  }
  return mapped_regions < MappingLimit();
}

void Track(MappedList* list, Region* region) {
  mapped_regions++;
  region->list = list;
  region->slot = list->regions.size();
  list->regions.push_back(region);
  list->bytes += region->length;
}

}  // namespace memjob
