// The Node-API half of the addon: argument unpacking, the exported calls, and
// errors carrying errno and syscall (the lifetime of Regions is in
// regions.cc). Option parsing, defaults and messages for users live in
// TypeScript (src/native.ts); the checks here are cheap re-checks that keep a
// bad call from touching memory it should not.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <sys/file.h>
#include <sys/mman.h>

#include "alloc.h"
#include "hash.h"
#include "mapping.h"
#include "regions.h"

namespace memjob {

namespace {

// Marks the External handles this addon creates, so that a foreign External
// can never be taken for a Region.
constexpr napi_type_tag kRegionTag = {0x6d656d6a6f627265ULL, 0x67696f6e68616e64ULL};

// The largest ArrayBuffer this Node accepts (buffer.constants.MAX_LENGTH),
// told by src/native.ts at load. Node-API has no way to ask, and Node calls
// an external buffer's finalizer when it refuses one, which node-addon-api
// would then free a second time: so oversized views are refused here first.
std::atomic<double> max_view_length{4294967296.0};

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  Napi::Error error = Napi::Error::New(env, std::string(syscall) + " failed: " + std::strerror(err));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

uint64_t ByteCount(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const Napi::Value value = info[index];
  if (!value.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  // 2^53: every integer below it is exact in a double.
  if (!(number >= 0) || number > 9007199254740992.0 || std::floor(number) != number)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a non-negative integer");
  return static_cast<uint64_t>(number);
}

Region* RegionArg(const Napi::CallbackInfo& info) {
  const Napi::Value value = info[0];
  bool tagged = false;
  if (value.IsExternal()) napi_check_object_type_tag(info.Env(), value, &kRegionTag, &tagged);
  if (!tagged) throw Napi::TypeError::New(info.Env(), "expected a mapping handle");
  return value.As<Napi::External<Region>>().Data();
}

Region* LiveRegionArg(const Napi::CallbackInfo& info) {
  Region* region = RegionArg(info);
  if (region->unmapped) throw Napi::Error::New(info.Env(), "mapping is closed");
  return region;
}

// Checks [offset, offset + length) against the region.
void CheckRange(const Napi::CallbackInfo& info, const Region* region, uint64_t offset, uint64_t length) {
  if (offset > region->length || length > region->length - offset)
    throw Napi::RangeError::New(info.Env(), "range is outside the mapping");
}

Napi::Value SetMaxViewLengthFn(const Napi::CallbackInfo& info) {
  max_view_length = static_cast<double>(ByteCount(info, 0, "maxViewLength"));
  return info.Env().Undefined();
}

Napi::Value PageSizeFn(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(PageSize()));
}

// map(fd, offset, length, shared) -> handle
Napi::Value MapFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const uint64_t offset = ByteCount(info, 1, "offset");
  const uint64_t length = ByteCount(info, 2, "length");
  const bool shared = info[3].ToBoolean().Value();
  MappedList* list = env.GetInstanceData<MappedList>();
  if (!ReclaimBeforeMap(env, list)) {
    Napi::Error error = Napi::Error::New(env, "too many mappings");
    error.Set("mappingLimit", Napi::Number::New(env, static_cast<double>(MappingLimit())));
    throw error;
  }

  Region* region = new Region();
  const int err = MapFile(fd, offset, length, shared, region);
  if (err != 0) {
    delete region;
    throw ErrnoError(env, err, "mmap");
  }
  Track(list, region);
  region->refs = 1;  // the handle's own reference
  auto handle = Napi::External<Region>::New(env, region, [](Napi::Env finalizeEnv, Region* r) {
    DeleteViewRefs(finalizeEnv, r, false);
    if (r->handle_ref != nullptr) napi_delete_reference(finalizeEnv, r->handle_ref);
    r->handle_ref = nullptr;
    Release(r);
  });
  napi_type_tag_object(env, handle, &kRegionTag);
  // Without this weak reference a sweep could take a region whose handle is
  // still alive, so failing to make it fails the call (the handle's
  // finalizer then releases the region).
  NAPI_THROW_IF_FAILED(env, napi_create_reference(env, handle, 0, &region->handle_ref), Napi::Value());
  return handle;
}

// view(handle, byteOffset, byteLength) -> ArrayBuffer over the mapped bytes
Napi::Value ViewFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Region* region = LiveRegionArg(info);
  const uint64_t offset = ByteCount(info, 1, "byteOffset");
  const uint64_t length = ByteCount(info, 2, "byteLength");
  CheckRange(info, region, offset, length);
  if (static_cast<double>(length) > max_view_length)
    throw Napi::RangeError::New(env, "view is larger than the largest ArrayBuffer");
  if (length == 0) return Napi::ArrayBuffer::New(env, 0);

  // V8 counts an external ArrayBuffer's length as external memory, and a
  // large count makes it collect garbage ("external memory pressure").
  // Mapped file pages are not memory a collection could free, so the count
  // is lowered first: when views made earlier are still counted, the new one
  // then adds nothing V8 has not seen. Nothing is given back when the view
  // dies or is detached: measured on Node 20.20, V8's count comes back to its
  // level of before anyway (process.memoryUsage().external stayed at 2 MiB
  // over 200 open/read/close cycles of 1 GiB), while giving it back as well,
  // in a lump every 4 GiB as this code once did, jumped the count past V8's
  // hard limit: a forced full collection after every fourth close() of a
  // 1 GiB memmap (docs: native-notes/README.md).
  int64_t ignored;
  napi_adjust_external_memory(env, -static_cast<int64_t>(length), &ignored);
  Napi::ArrayBuffer view = Napi::ArrayBuffer::New(
      env, region->addr + offset, static_cast<size_t>(length),
      [](Napi::Env, void*, Region* r) { Release(r); }, region);
  region->refs++;

  if (region->views.size() >= 64 && region->views.size() % 64 == 0) PruneDeadViews(env, region);
  napi_ref ref;
  NAPI_THROW_IF_FAILED(env, napi_create_reference(env, view, 0, &ref), Napi::Value());
  region->views.push_back(ref);
  return view;
}

// unmap(handle): detaches every live view, then releases the address range.
// Idempotent. Views are detached first so that no JavaScript object can read
// the range after munmap (a detached view reads as empty).
Napi::Value UnmapFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Region* region = RegionArg(info);
  if (region->unmapped) return env.Undefined();
  DeleteViewRefs(env, region, true);
  const int err = Unmap(region);
  if (err != 0) throw ErrnoError(env, err, "munmap");
  return env.Undefined();
}

// sync(handle, byteOffset, byteLength, async)
Napi::Value SyncFn(const Napi::CallbackInfo& info) {
  Region* region = LiveRegionArg(info);
  const uint64_t offset = ByteCount(info, 1, "byteOffset");
  const uint64_t length = ByteCount(info, 2, "byteLength");
  CheckRange(info, region, offset, length);
  const int err = SyncRange(region, offset, length, info[3].ToBoolean().Value());
  if (err != 0) throw ErrnoError(info.Env(), err, "msync");
  return info.Env().Undefined();
}

int AdviceCode(const std::string& name) {
  if (name == "normal") return MADV_NORMAL;
  if (name == "random") return MADV_RANDOM;
  if (name == "sequential") return MADV_SEQUENTIAL;
  if (name == "willneed") return MADV_WILLNEED;
  if (name == "dontneed") return MADV_DONTNEED;
  return -1;
}

// advise(handle, byteOffset, byteLength, advice)
Napi::Value AdviseFn(const Napi::CallbackInfo& info) {
  Region* region = LiveRegionArg(info);
  const uint64_t offset = ByteCount(info, 1, "byteOffset");
  const uint64_t length = ByteCount(info, 2, "byteLength");
  CheckRange(info, region, offset, length);
  const int advice = info[3].IsString() ? AdviceCode(info[3].As<Napi::String>().Utf8Value()) : -1;
  if (advice < 0) throw Napi::TypeError::New(info.Env(), "unknown advice");
  const int err = AdviseRange(region, offset, length, advice);
  if (err != 0) throw ErrnoError(info.Env(), err, "madvise");
  return info.Env().Undefined();
}

// incore(handle, byteOffset, byteLength) -> [residentPages, totalPages]
Napi::Value IncoreFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Region* region = LiveRegionArg(info);
  const uint64_t offset = ByteCount(info, 1, "byteOffset");
  const uint64_t length = ByteCount(info, 2, "byteLength");
  CheckRange(info, region, offset, length);
  uint64_t resident = 0, total = 0;
  const int err = CountResidentPages(region, offset, length, &resident, &total);
  if (err != 0) throw ErrnoError(env, err, "mincore");
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, static_cast<double>(resident)));
  result.Set(1u, Napi::Number::New(env, static_cast<double>(total)));
  return result;
}

// flock(fd, operation) -> true when the lock was taken (or released), false
// when another open file description holds a conflicting one. operation is
// 'exclusive', 'shared' or 'unlock'; never blocks (LOCK_NB), because a
// blocked main thread could not run anything else. Run folders use it to
// prove they are alive across PID namespaces (src/transport/temp-reap.ts).
Napi::Value FlockFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  const double fd = info[0].As<Napi::Number>().DoubleValue();
  if (!(fd >= 0) || fd > 2147483647.0 || std::floor(fd) != fd)
    throw Napi::RangeError::New(env, "fd must be a non-negative 32-bit integer");
  const std::string name = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  int operation = -1;
  if (name == "exclusive") operation = LOCK_EX;
  if (name == "shared") operation = LOCK_SH;
  if (name == "unlock") operation = LOCK_UN;
  if (operation < 0) throw Napi::TypeError::New(env, "unknown lock operation");
  bool acquired = false;
  const int err = TryFlock(static_cast<int>(fd), operation, &acquired);
  if (err != 0) throw ErrnoError(env, err, "flock");
  return Napi::Boolean::New(env, acquired);
}

// hole(handle, path, fileOffset, byteLength) -> true when the file at `path`
// is still the one mapped and holds no data in the range (RangeIsHole), so a
// writer may leave a hole there instead of reading the range's zeros. Errors
// (the file gone, say) answer false: the caller then reads the range.
Napi::Value HoleFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Region* region = LiveRegionArg(info);
  if (!info[1].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  const std::string path = info[1].As<Napi::String>().Utf8Value();
  const uint64_t offset = ByteCount(info, 2, "fileOffset");
  const uint64_t length = ByteCount(info, 3, "byteLength");
  bool hole = false;
  if (RangeIsHole(region, path.c_str(), offset, length, &hole) != 0) hole = false;
  return Napi::Boolean::New(env, hole);
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new MappedList());
  exports.Set("setMaxViewLength", Napi::Function::New(env, SetMaxViewLengthFn, "setMaxViewLength"));
  exports.Set("pageSize", Napi::Function::New(env, PageSizeFn, "pageSize"));
  exports.Set("map", Napi::Function::New(env, MapFn, "map"));
  exports.Set("view", Napi::Function::New(env, ViewFn, "view"));
  exports.Set("unmap", Napi::Function::New(env, UnmapFn, "unmap"));
  exports.Set("sync", Napi::Function::New(env, SyncFn, "sync"));
  exports.Set("advise", Napi::Function::New(env, AdviseFn, "advise"));
  exports.Set("incore", Napi::Function::New(env, IncoreFn, "incore"));
  exports.Set("hole", Napi::Function::New(env, HoleFn, "hole"));
  exports.Set("flock", Napi::Function::New(env, FlockFn, "flock"));
  InitHash(env, exports);
  InitAlloc(env, exports);
  return exports;
}

}  // namespace memjob

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return memjob::Init(env, exports);
}

NODE_API_MODULE(memjob_native, InitAddon)
