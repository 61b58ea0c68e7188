"""The e-mail layouts shipped with syncd (found by ``syncd.layouts`` via importlib.resources).

Each folder is one layout: ``subject.txt.j2``, ``body.txt.j2`` and ``body.html.j2``. Copy a
folder into ``[mail] layouts_dir`` and edit it there to override it by name.
"""
