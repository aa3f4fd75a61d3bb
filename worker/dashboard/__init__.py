"""``routeq dashboard``: a read-only web page over the rollups and the live state.

``data`` assembles the page's JSON, ``app`` serves it with the page and its static files (the
chart library, uPlot, is vendored in ``static/``: no CDN, so it works behind firewalls).
"""
