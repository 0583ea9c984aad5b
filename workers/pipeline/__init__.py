"""The upload pipeline: the engine's local HLS files -> the bucket.

Modules depend on each other in one direction only (a module imports only
modules listed before it; tests/workers/test_import_graph.py keeps it so):

1. `mpegts`, `local_hls`, `locks`: timestamps inside a segment, what the
   engine left on local disk, the per-stream sync lock.
2. `broadcasts`, `continuity`: the broadcast a segment belongs to; where a
   player may start and where it must reset (engine discontinuities that
   are none, a first segment whose audio track is empty).
3. `playlists`: the live and replay m3u8 the bucket gets.
4. `live`, `replay`: put the live playlist / a broadcast's replay playlist
   in the bucket.
5. `sync`: one stream's pass (segments, live playlist, late replays).
6. `finalize`, `purge`, `visibility`: end of a broadcast (a last sync,
   then its replay), deletion of a stream's media, its move between the
   public and the private prefix.

The RQ entry points are in `workers.jobs`; nothing here knows about queues.
"""
