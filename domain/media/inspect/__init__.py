"""Checking an upload by its content, never its name.

In order, each step cheaper than the next (`validation.validate` runs them all):
1. the size on disk (and the size the client declared),
2. the magic bytes of the first 64 KB (`sniffing`): text, documents, archives and unknown formats
   stop here,
3. for images, the dimensions stated in the header (`image_headers`), read by seeking over the
   file's segments without decoding a pixel, so a 30000x30000 image is refused before anything
   decodes it (decompression-bomb guard),
4. ffprobe (`ffprobe`) for what the file really holds: streams, duration, rotation, frame rate,
5. the limits (`limits.MediaLimits`) and a structural check that the container is complete
   (`truncation`).

Pure Python plus the `ffprobe` binary. Callers map the errors (`limits`) onto problem details by
their status. `filenames` makes the client's file name safe to show.

ffmpeg and ffprobe never guess the format of an uploaded file: `sniffing.input_args` opens it with
the demuxer of the format `sniff` found (`-f mov`, `-f mp3`, ...) and only the protocol that reaches
it (`-protocol_whitelist file`, or http(s) for an object in S3). Left to guess, ffmpeg takes a file
that starts like an MP3 (an ID3 tag) and goes on as an HLS playlist or an ffconcat list for a
playlist demuxer, which then opens the URLs and files the playlist names: requests into the
platform's network, files of the server.
"""
