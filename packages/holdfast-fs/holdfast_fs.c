/*
 * fallocate(2) for Node: Node's fs has no call that deallocates part of a file.
 *
 *   fallocate(fd, mode, offset, length, callback(errnoOrZero))
 *
 * runs on libuv's thread pool (a punch over many extents can take milliseconds) and calls back
 * with 0 or the errno (EOPNOTSUPP where the file system cannot punch, ENOSYS off Linux).
 * Modes are the kernel's FALLOC_FL_* bits, exported as constants.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <node_api.h>
#ifdef __linux__
#include <fcntl.h>
#include <linux/falloc.h>
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

static void constant(napi_env env, napi_value exports, const char *name, int32_t value) {
  napi_value v;
  napi_create_int32(env, value, &v);
  napi_set_named_property(env, exports, name, v);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "fallocate", NAPI_AUTO_LENGTH, js_fallocate, NULL, &fn);
  napi_set_named_property(env, exports, "fallocate", fn);
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
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
