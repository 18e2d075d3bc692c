"""A whole-clip video encoder on its own thread, fed decoded frames through a short queue.

The caller puts placed frames in and takes encoded packets out; it muxes them itself, so
the output container is only ever touched by one thread.  The queue holds a few frames:
enough that the decoder need not wait for each ``encode`` call to return, few enough
(about 3 MiB a 1080p frame) that memory does not depend on the clip's length.  x264/x265
keep their own lookahead and frame threads behind it, as they do under the ffmpeg CLI.

An export that fails part-way never calls ``finish``: the thread notices its owner is
gone (a weak reference) and ends within ``_POLL`` seconds instead of waiting forever.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections import deque

import av
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

QUEUE_FRAMES = 4  # decoded frames between the decoder and the encoder
_POLL = 0.2  # s; how often an idle encoder thread checks that its owner still exists

_Item = tuple[av.VideoFrame, int] | None  # a frame and its output pts; None: the end


class EncoderThread:
    def __init__(
        self, owner: object, encoder: av.VideoCodecContext, width: int, height: int
    ) -> None:
        self.encoder = encoder
        self.width, self.height = width, height
        self.frames: queue.Queue[_Item] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.packets: deque[av.Packet] = deque()  # encoded, not yet taken
        self.error: BaseException | None = None
        # One scaler for the clip: VideoFrame.reformat would set one up for every frame.
        self.scaler = VideoReformatter()
        abandoned = threading.Event()
        self._finalizer = weakref.finalize(owner, abandoned.set)
        self.thread = threading.Thread(
            target=self._run, args=(abandoned,), name="encoder", daemon=True
        )
        self.thread.start()

    def put(self, frame: av.VideoFrame, pts: int) -> None:
        """Queue ``frame`` for output time ``pts``; waits while the queue is full."""
        self._put((frame, pts))

    def take(self) -> list[av.Packet]:
        """The packets encoded so far, in encoder output order."""
        self._raise()
        out: list[av.Packet] = []
        while self.packets:
            out.append(self.packets.popleft())
        return out

    def finish(self) -> list[av.Packet]:
        """Flush the encoder and end the thread; the packets not taken yet."""
        self._put(None)
        self.thread.join()
        self._finalizer.detach()
        return self.take()

    def _put(self, item: _Item) -> None:
        while True:
            self._raise()
            try:
                self.frames.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self, abandoned: threading.Event) -> None:
        try:
            while not abandoned.is_set():
                try:
                    item = self.frames.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if item is None:
                    self.packets.extend(self.encoder.encode(None))
                    return
                self.packets.extend(self.encoder.encode(self._prepare(*item)))
        except BaseException as e:  # handed to the caller at its next put/take
            self.error = e

    def _prepare(self, frame: av.VideoFrame, pts: int) -> av.VideoFrame:
        # A no-op (the same frame back) for 8-bit 4:2:0 sources of the clip's size.
        out = self.scaler.reformat(frame, width=self.width, height=self.height, format="yuv420p")
        out.pts = pts
        out.pict_type = PictureType.NONE  # the source's frame types must not bind x264
        out.time_base = self.encoder.time_base
        return out
