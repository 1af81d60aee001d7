{
  "targets": [
    {
      "target_name": "holdfast_fs",
      "sources": ["holdfast_fs.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
