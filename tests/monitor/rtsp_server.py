"""A real RTSP server for the tests: GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0)
relaying an MPEG-TS stream that the test sends to it over loopback UDP, as H.264 over RTP.

Run with the system Python, which has PyGObject: ``/usr/bin/python3 rtsp_server.py RTSP_PORT
UDP_PORT``. RTSP_PORT 0 picks a free port. Prints ``ready PORT`` once it listens on 127.0.0.1.
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( udpsrc address=127.0.0.1 port={udp} buffer-size=4194304"
    ' caps="video/mpegts,systemstream=(boolean)true,packetsize=(int)188"'
    " ! tsdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
)


def main() -> None:
    rtsp_port, udp_port = int(sys.argv[1]), int(sys.argv[2])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(rtsp_port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE.format(udp=udp_port))
    factory.set_shared(True)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{rtsp_port}")
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print(f"ready {server.get_bound_port()}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
