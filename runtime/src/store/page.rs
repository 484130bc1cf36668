//! Paging through stored messages: page sizes, cursors, and pages read with
//! one row more than asked for, so the last page is known without another
//! query. Shared by the dead-letter list and the message list.

use serde::Serialize;

use super::StoreError;
use crate::message::InvalidInput;

/// The default and largest page.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

impl<T> Page<T> {
    /// A page from rows read as (item, position), asked for with one row
    /// more than `limit`; the last item's position is the next cursor.
    pub(crate) fn from_rows<P: ToString>(rows: Vec<(T, P)>, limit: usize) -> Self {
        let more = rows.len() > limit;
        let mut page = Self::default();
        let mut last = None;
        for (item, position) in rows.into_iter().take(limit) {
            page.items.push(item);
            last = Some(position);
        }
        if more {
            page.next_cursor = last.map(|p| p.to_string());
        }
        page
    }
}

/// The page size asked for (0: the default), within bounds.
pub(crate) fn page_size(limit: usize) -> usize {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// The position a cursor continues after (0: from the start); `what` names
/// the list in the error ("dead-letter", "message").
pub(crate) fn after(cursor: Option<&str>, what: &str) -> Result<i64, StoreError> {
    match cursor {
        None => Ok(0),
        Some(c) => c.parse().map_err(|_| {
            StoreError::Invalid(InvalidInput::Id(format!(
                "`{c}` is not a {what} cursor: pass the next_cursor of a previous page"
            )))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_where_the_rows_do() {
        let full: Page<u8> = Page::from_rows(vec![(1, 10), (2, 11), (3, 12)], 2);
        assert_eq!(
            (full.items, full.next_cursor),
            (vec![1, 2], Some("11".to_owned()))
        );
        let last: Page<u8> = Page::from_rows(vec![(1, 10)], 2);
        assert_eq!(last.next_cursor, None);
        assert_eq!(
            (page_size(0), page_size(5), page_size(5000)),
            (100, 5, 1000)
        );
        assert!(after(Some("x"), "message").is_err());
        assert_eq!(after(None, "message").ok(), Some(0));
    }
}
