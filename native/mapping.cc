#include "mapping.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

namespace memjob {

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

int MapFile(int fd, uint64_t offset, uint64_t length, bool shared, Region* out) {
  if (length == 0 || offset % PageSize() != 0) return EINVAL;
  if (length > SIZE_MAX) return ENOMEM;
  // Private mappings are always writable: a write through a read-only ('r')
  // view then lands in a private copy-on-write page instead of raising SIGSEGV
  // and killing the process. MAP_NORESERVE keeps a huge private mapping from
  // being refused by overcommit accounting before any page is touched.
  const int flags = shared ? MAP_SHARED : (MAP_PRIVATE | MAP_NORESERVE);
  void* addr = mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE,
                    flags, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) return errno;
  out->addr = static_cast<uint8_t*>(addr);
  out->length = static_cast<size_t>(length);
  out->unmapped = false;
  struct stat st;
  if (fstat(fd, &st) == 0) {
    out->dev = static_cast<uint64_t>(st.st_dev);
    out->ino = static_cast<uint64_t>(st.st_ino);
    out->identified = true;
  }
  return 0;
}

int RangeIsHole(const Region* region, const char* path, uint64_t offset, uint64_t length, bool* hole) {
  *hole = false;
  if (!region->identified || offset > static_cast<uint64_t>(INT64_MAX)) return 0;
  // O_NONBLOCK: a FIFO put at the path must not block open(); fstat then tells it apart.
  const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return errno;
  struct stat st;
  int err = 0;
  if (fstat(fd, &st) != 0) {
    err = errno;
  } else if (static_cast<uint64_t>(st.st_dev) == region->dev && static_cast<uint64_t>(st.st_ino) == region->ino) {
    const off_t data = lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
    if (data >= 0) {
      *hole = static_cast<uint64_t>(data) >= offset + length;
    } else if (errno == ENXIO) {
      *hole = true;  // no data from offset to the end of the file
    } else if (errno != EINVAL) {
      err = errno;  // EINVAL: no SEEK_DATA here; the range counts as data
    }
  }
  close(fd);
  return err;
}

int TryFlock(int fd, int operation, bool* acquired) {
  *acquired = false;
  int result;
  do {
    result = flock(fd, operation | LOCK_NB);
  } while (result != 0 && errno == EINTR);
  if (result == 0) {
    *acquired = true;
    return 0;
  }
  return errno == EWOULDBLOCK ? 0 : errno;
}

int UnmapRegion(Region* region) {
  if (region->unmapped) return 0;
  region->unmapped = true;
  if (munmap(region->addr, region->length) != 0) return errno;
  return 0;
}

namespace {
// Rounds a byte range inside the region out to page boundaries.
void PageRange(const Region* region, uint64_t offset, uint64_t length,
               uint8_t** start, size_t* span) {
  const size_t page = PageSize();
  const uint64_t begin = offset - offset % page;
  uint64_t end = offset + length;
  if (end > region->length) end = region->length;
  *start = region->addr + begin;
  *span = static_cast<size_t>(end - begin);
}
}  // namespace

int SyncRange(const Region* region, uint64_t offset, uint64_t length, bool async) {
  uint8_t* start;
  size_t span;
  PageRange(region, offset, length, &start, &span);
  if (span == 0) return 0;
  if (msync(start, span, async ? MS_ASYNC : MS_SYNC) != 0) return errno;
  return 0;
}

int AdviseRange(const Region* region, uint64_t offset, uint64_t length, int advice) {
  uint8_t* start;
  size_t span;
  PageRange(region, offset, length, &start, &span);
  if (span == 0) return 0;
  if (madvise(start, span, advice) != 0) return errno;
  return 0;
}

int CountResidentPages(const Region* region, uint64_t offset, uint64_t length,
                       uint64_t* resident, uint64_t* total) {
  uint8_t* start;
  size_t span;
  PageRange(region, offset, length, &start, &span);
  const size_t page = PageSize();
  const size_t pages = (span + page - 1) / page;
  *resident = 0;
  *total = pages;
  // mincore wants one byte per page; walk in bounded chunks so a 64 GiB
  // region does not need a 16 MiB vector.
  constexpr size_t kChunkPages = 1 << 16;
  std::vector<unsigned char> vec(pages < kChunkPages ? pages : kChunkPages);
  for (size_t done = 0; done < pages;) {
    const size_t n = pages - done < kChunkPages ? pages - done : kChunkPages;
#if defined(__APPLE__)
    using VecType = char*;
#else
    using VecType = unsigned char*;
#endif
    if (mincore(start + done * page, n * page, reinterpret_cast<VecType>(vec.data())) != 0)
      return errno;
    for (size_t i = 0; i < n; i++) *resident += vec[i] & 1;
    done += n;
  }
  return 0;
}

}  // namespace memjob
