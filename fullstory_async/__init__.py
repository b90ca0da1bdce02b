from fullstory_async._version import __version__ as __version__
