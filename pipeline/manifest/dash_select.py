"""Which Representations of a Period to use: the highest-resolution video, the main audio."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from pipeline.model import TrackInfo

_TRICK_MODE = "http://dashif.org/guidelines/trickmode"
_MAIN_ROLE = ("urn:mpeg:dash:role:2011", "main")
_VIDEO_CODECS = ("avc", "hvc", "hev", "av01", "vp09")
_AUDIO_CODECS = ("mp4a", "opus", "ac-3", "ec-3")

Pair = tuple[ET.Element, ET.Element]  # (AdaptationSet, Representation)


@dataclass(frozen=True)
class Choice:
    video: Pair | None
    audio: Pair | None


def choose_representations(period: ET.Element, ns: str) -> Choice:
    """Highest resolution video (tie: highest bandwidth), across all video AdaptationSets
    except trick-mode ones; the audio AdaptationSet with Role main, else the first, and its
    highest-bandwidth Representation."""
    videos: list[Pair] = []
    audios: list[ET.Element] = []
    for aset in period.findall(ns + "AdaptationSet"):
        kind = content_kind(aset, ns)
        if kind == "video" and not _is_trick_mode(aset, ns):
            videos.extend((aset, rep) for rep in aset.findall(ns + "Representation"))
        elif kind == "audio" and aset.find(ns + "Representation") is not None:
            audios.append(aset)
    video = None
    if videos:
        video = max(videos, key=_video_rank)
    audio = None
    if audios:
        a_set = next((a for a in audios if _has_main_role(a, ns)), audios[0])
        reps = a_set.findall(ns + "Representation")
        audio = (a_set, max(reps, key=lambda r: int_attr(a_set, r, "bandwidth")))
    return Choice(video, audio)


def _video_rank(pair: Pair) -> tuple[int, int]:
    aset, rep = pair
    pixels = int_attr(aset, rep, "width") * int_attr(aset, rep, "height")
    return pixels, int_attr(aset, rep, "bandwidth")


def attr(aset: ET.Element, rep: ET.Element, name: str) -> str | None:
    """A Representation attribute, inherited from its AdaptationSet."""
    value = rep.get(name)
    return aset.get(name) if value is None else value


def int_attr(aset: ET.Element, rep: ET.Element, name: str) -> int:
    value = attr(aset, rep, name)
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def content_kind(aset: ET.Element, ns: str) -> str | None:
    kind = aset.get("contentType")
    if kind:
        return kind
    rep = aset.find(ns + "Representation")
    mime = aset.get("mimeType") or (rep.get("mimeType") if rep is not None else None) or ""
    if mime.startswith(("video/", "audio/")):
        return mime.split("/", 1)[0]
    codecs = aset.get("codecs") or (rep.get("codecs") if rep is not None else None) or ""
    if codecs.startswith(_VIDEO_CODECS):
        return "video"
    if codecs.startswith(_AUDIO_CODECS):
        return "audio"
    return None


def _is_trick_mode(aset: ET.Element, ns: str) -> bool:
    return any(p.get("schemeIdUri") == _TRICK_MODE for p in aset.findall(ns + "EssentialProperty"))


def _has_main_role(aset: ET.Element, ns: str) -> bool:
    return any(
        (r.get("schemeIdUri"), r.get("value")) == _MAIN_ROLE for r in aset.findall(ns + "Role")
    )


def track_info(aset: ET.Element, rep: ET.Element, ns: str, kind: str) -> TrackInfo:
    channels = None
    acc = rep.find(ns + "AudioChannelConfiguration")
    if acc is None:
        acc = aset.find(ns + "AudioChannelConfiguration")
    if acc is not None and (acc.get("value") or "").isdigit():
        channels = int(acc.get("value", "0"))
    return TrackInfo(
        kind="video" if kind == "video" else "audio",
        codec=attr(aset, rep, "codecs") or "",
        bandwidth=int_attr(aset, rep, "bandwidth") or None,
        width=int_attr(aset, rep, "width") or None,
        height=int_attr(aset, rep, "height") or None,
        frame_rate=_frame_rate(attr(aset, rep, "frameRate")),
        sample_rate=int_attr(aset, rep, "audioSamplingRate") or None,
        channels=channels,
    )


def _frame_rate(value: str | None) -> float | None:
    if not value:
        return None
    num, _, den = value.partition("/")
    try:
        return int(num) / int(den or "1")
    except (ValueError, ZeroDivisionError):
        return None
