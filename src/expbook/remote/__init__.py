"""Stores on an ``expbook server``: ``HttpStore`` (``open_store("https://host:port")``), its
journal, and the wire format both sides share. Imported only when such a store is opened."""
