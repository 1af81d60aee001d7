/*
 * fallocate(2), lseek(SEEK_DATA), copy_file_range(2) and sched_setattr(2) for Node: calls Node lacks.
 *
 *   fallocate(fd, mode, offset, length, callback(errnoOrZero))
 *
 * runs on libuv's thread pool (a punch over many extents can take milliseconds) and calls back
 * with 0 or the errno (EOPNOTSUPP where the file system cannot punch, ENOSYS off Linux).
 * Modes are the kernel's FALLOC_FL_* bits, exported as constants.
 *
 *   dataRanges(fd, start, end, callback(errnoOrZero, ranges))
 *
 * walks [start, end) with lseek(SEEK_DATA / SEEK_HOLE), also on the thread pool, and calls back
 * with [offset, length, offset, length, ...] of the ranges holding data (unwritten, preallocated
 * extents read as zeroes and count as holes, as the kernel reports them). The descriptor's file
 * position moves; callers use positional I/O only.
 *
 *   copyRangeSync(fdIn, offsetIn, fdOut, offsetOut, length) -> bytes copied, or -errno
 *
 * copy_file_range(2), synchronously on the calling thread (a released held write: a few KiB the
 * page cache has, copied from the journal to the volume's image without passing through user
 * memory). One call; the caller loops over short counts. -EXDEV / -EINVAL / -EOPNOTSUPP / -ENOSYS /
 * -EBADF where the files cannot (another file system, a block device, an O_APPEND target, off
 * Linux).
 *
 *   setThreadSlice(tid, nanoseconds, nice) -> 0 or errno
 *
 * sched_setattr(2) on thread `tid` of this process (0: the calling thread): the normal policy at
 * `nice`, with `nanoseconds` as its EEVDF slice (Linux 6.12 and later clamp it to 0.1-100 ms;
 * older kernels accept and ignore it). ENOSYS off Linux.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <node_api.h>
#ifdef __linux__
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

typedef struct {
  napi_async_work work;
  napi_ref callback;
  int fd;
  int mode;
  int64_t offset;
  int64_t length;
  int err;
} Request;

static void execute(napi_env env, void *data) {
  (void)env;
  Request *r = data;
#ifdef __linux__
  int rc;
  do rc = fallocate(r->fd, r->mode, (off_t)r->offset, (off_t)r->length);
  while (rc != 0 && errno == EINTR);
  r->err = rc == 0 ? 0 : errno;
#else
  r->err = ENOSYS;
#endif
}

static void complete(napi_env env, napi_status status, void *data) {
  Request *r = data;
  napi_value cb, global, arg;
  napi_get_reference_value(env, r->callback, &cb);
  napi_get_global(env, &global);
  napi_create_int32(env, status == napi_ok ? r->err : ECANCELED, &arg);
  napi_delete_reference(env, r->callback);
  napi_delete_async_work(env, r->work);
  free(r);
  napi_call_function(env, global, cb, 1, &arg, NULL);
}

static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "fallocate(fd, mode, offset, length, callback)");
    return NULL;
  }
  int32_t fd, mode;
  int64_t offset, length;
  napi_valuetype cbType;
  napi_typeof(env, argv[4], &cbType);
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &mode) != napi_ok ||
      napi_get_value_int64(env, argv[2], &offset) != napi_ok || napi_get_value_int64(env, argv[3], &length) != napi_ok ||
      cbType != napi_function || fd < 0 || offset < 0 || length <= 0) {
    napi_throw_type_error(env, NULL, "fallocate: fd, mode, offset >= 0 and length > 0 must be integers, callback a function");
    return NULL;
  }
  Request *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, NULL, "fallocate: out of memory");
    return NULL;
  }
  r->fd = fd;
  r->mode = mode;
  r->offset = offset;
  r->length = length;
  napi_value name;
  napi_create_string_utf8(env, "holdfast.fallocate", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[4], 1, &r->callback);
  napi_create_async_work(env, NULL, name, execute, complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return NULL;
}

typedef struct {
  napi_async_work work;
  napi_ref callback;
  int fd;
  int64_t start;
  int64_t end;
  int64_t *ranges; /* offset, length pairs */
  size_t count;     /* int64s used */
  size_t cap;
  int err;
} MapRequest;

static int push(MapRequest *r, int64_t offset, int64_t length) {
  if (r->count + 2 > r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    int64_t *grown = realloc(r->ranges, cap * sizeof *grown);
    if (!grown) return ENOMEM;
    r->ranges = grown;
    r->cap = cap;
  }
  r->ranges[r->count++] = offset;
  r->ranges[r->count++] = length;
  return 0;
}

static void map_execute(napi_env env, void *data) {
  (void)env;
  MapRequest *r = data;
#if defined(__linux__) && defined(SEEK_DATA)
  int64_t pos = r->start;
  while (pos < r->end) {
    off_t d = lseek(r->fd, (off_t)pos, SEEK_DATA);
    if (d < 0) {
      r->err = errno == ENXIO ? 0 : errno; /* ENXIO: no data at or after pos */
      return;
    }
    if (d >= r->end) return;
    off_t h = lseek(r->fd, d, SEEK_HOLE);
    if (h < 0) {
      r->err = errno;
      return;
    }
    if (h <= d) {
      r->err = EIO; /* a file system answering nonsense: say nothing rather than something wrong */
      return;
    }
    int64_t stop = h < r->end ? (int64_t)h : r->end;
    if ((r->err = push(r, (int64_t)d, stop - (int64_t)d)) != 0) return;
    pos = (int64_t)h;
  }
#else
  r->err = ENOSYS;
#endif
}

static void map_complete(napi_env env, napi_status status, void *data) {
  MapRequest *r = data;
  napi_value cb, global, argv[2];
  napi_get_reference_value(env, r->callback, &cb);
  napi_get_global(env, &global);
  int err = status == napi_ok ? r->err : ECANCELED;
  napi_create_int32(env, err, &argv[0]);
  if (err == 0) {
    napi_create_array_with_length(env, r->count, &argv[1]);
    for (size_t i = 0; i < r->count; i++) {
      napi_value v;
      napi_create_int64(env, r->ranges[i], &v);
      napi_set_element(env, argv[1], (uint32_t)i, v);
    }
  } else {
    napi_get_null(env, &argv[1]);
  }
  napi_delete_reference(env, r->callback);
  napi_delete_async_work(env, r->work);
  free(r->ranges);
  free(r);
  napi_call_function(env, global, cb, 2, argv, NULL);
}

static napi_value js_data_ranges(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  int64_t start, end;
  napi_valuetype cbType = napi_undefined;
  if (argc >= 4) napi_typeof(env, argv[3], &cbType);
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &start) != napi_ok ||
      napi_get_value_int64(env, argv[2], &end) != napi_ok || cbType != napi_function || fd < 0 || start < 0 || end < start) {
    napi_throw_type_error(env, NULL, "dataRanges(fd, start, end, callback): integers with 0 <= start <= end, callback a function");
    return NULL;
  }
  MapRequest *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, NULL, "dataRanges: out of memory");
    return NULL;
  }
  r->fd = fd;
  r->start = start;
  r->end = end;
  napi_value name;
  napi_create_string_utf8(env, "holdfast.dataRanges", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[3], 1, &r->callback);
  napi_create_async_work(env, NULL, name, map_execute, map_complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return NULL;
}

static napi_value js_copy_range_sync(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fdIn, fdOut;
  int64_t offIn, offOut, length;
  if (argc < 5 || napi_get_value_int32(env, argv[0], &fdIn) != napi_ok || napi_get_value_int64(env, argv[1], &offIn) != napi_ok ||
      napi_get_value_int32(env, argv[2], &fdOut) != napi_ok || napi_get_value_int64(env, argv[3], &offOut) != napi_ok ||
      napi_get_value_int64(env, argv[4], &length) != napi_ok || fdIn < 0 || fdOut < 0 || offIn < 0 || offOut < 0 || length <= 0) {
    napi_throw_type_error(env, NULL, "copyRangeSync(fdIn, offsetIn, fdOut, offsetOut, length): integers >= 0, length > 0");
    return NULL;
  }
  int64_t result;
#ifdef __linux__
  loff_t in = (loff_t)offIn, out = (loff_t)offOut;
  ssize_t n;
  do n = copy_file_range(fdIn, &in, fdOut, &out, (size_t)length, 0);
  while (n < 0 && errno == EINTR);
  result = n < 0 ? -(int64_t)errno : (int64_t)n;
#else
  result = -(int64_t)ENOSYS;
#endif
  napi_value v;
  napi_create_int64(env, result, &v);
  return v;
}

#ifdef __linux__
/* The kernel's struct sched_attr (glibc has no wrapper for sched_setattr). */
struct thread_sched_attr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
};
#endif

static napi_value js_set_thread_slice(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t tid, nice;
  int64_t ns;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &tid) != napi_ok || napi_get_value_int64(env, argv[1], &ns) != napi_ok ||
      napi_get_value_int32(env, argv[2], &nice) != napi_ok || tid < 0 || ns <= 0 || nice < -20 || nice > 19) {
    napi_throw_type_error(env, NULL, "setThreadSlice(tid, nanoseconds, nice): tid >= 0, nanoseconds > 0, nice in -20..19");
    return NULL;
  }
  int32_t err;
#ifdef __linux__
  struct thread_sched_attr a = {0};
  a.size = sizeof a;
  a.sched_policy = 0; /* SCHED_OTHER */
  a.sched_nice = nice;
  a.sched_runtime = (uint64_t)ns;
  err = syscall(SYS_sched_setattr, tid, &a, 0) == 0 ? 0 : errno;
#else
  err = ENOSYS;
#endif
  napi_value v;
  napi_create_int32(env, err, &v);
  return v;
}

static void constant(napi_env env, napi_value exports, const char *name, int32_t value) {
  napi_value v;
  napi_create_int32(env, value, &v);
  napi_set_named_property(env, exports, name, v);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "fallocate", NAPI_AUTO_LENGTH, js_fallocate, NULL, &fn);
  napi_set_named_property(env, exports, "fallocate", fn);
  napi_create_function(env, "dataRanges", NAPI_AUTO_LENGTH, js_data_ranges, NULL, &fn);
  napi_set_named_property(env, exports, "dataRanges", fn);
  napi_create_function(env, "copyRangeSync", NAPI_AUTO_LENGTH, js_copy_range_sync, NULL, &fn);
  napi_set_named_property(env, exports, "copyRangeSync", fn);
  napi_create_function(env, "setThreadSlice", NAPI_AUTO_LENGTH, js_set_thread_slice, NULL, &fn);
  napi_set_named_property(env, exports, "setThreadSlice", fn);
#ifdef __linux__
  constant(env, exports, "FALLOC_FL_KEEP_SIZE", FALLOC_FL_KEEP_SIZE);
  constant(env, exports, "FALLOC_FL_PUNCH_HOLE", FALLOC_FL_PUNCH_HOLE);
  constant(env, exports, "FALLOC_FL_ZERO_RANGE", FALLOC_FL_ZERO_RANGE);
#else
  constant(env, exports, "FALLOC_FL_KEEP_SIZE", 1);
  constant(env, exports, "FALLOC_FL_PUNCH_HOLE", 2);
  constant(env, exports, "FALLOC_FL_ZERO_RANGE", 16);
#endif
  constant(env, exports, "EOPNOTSUPP", EOPNOTSUPP);
  constant(env, exports, "ENOSYS", ENOSYS);
  constant(env, exports, "EXDEV", EXDEV);
  constant(env, exports, "EINVAL", EINVAL);
  constant(env, exports, "EBADF", EBADF);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
