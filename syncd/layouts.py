"""Former home of the layout code, split into ``syncd.layout_store`` (finding, loading,
rendering), ``syncd.layout_context`` (what a layout sees) and ``syncd.layout_checks`` (static
checks). Re-exports until the layout step of issue 12 rewrites the imports."""

from syncd.layout_checks import reads_column  # noqa: F401  # i12-alias
from syncd.layout_context import (  # noqa: F401  # i12-alias
    ADDRESS_FIELDS,
    CONTEXT_NAMES,
    CUSTOMER_FIELDS,
    FILES,
    HTML,
    REQUIRED,
    SHOP_FIELDS,
    SUBJECT,
    TEXT,
    ErpRow,
    build_context,
)
from syncd.layout_store import (  # noqa: F401  # i12-alias
    PREVIEW_PLACEHOLDER,
    LayoutError,
    LayoutStore,
    shipped_root,
)
