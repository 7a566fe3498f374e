use crate::client::{InnerClient, Responses};
use crate::prepare::get_type;
use crate::query::{command_tuples, extract_row_affected};
use crate::{Column, Row, Statement};
use crate::codec::FrontendMessage;
use crate::connection::RequestMessages;
use crate::{Error, SimpleQueryMessage, SimpleQueryRow};
use bytes::Bytes;
use fallible_iterator::FallibleIterator;
use futures_util::Stream;
use log::debug;
use pin_project_lite::pin_project;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// Information about a column of a single query row.
#[derive(Debug)]
pub struct SimpleColumn {
    name: String,
}

impl SimpleColumn {
    pub(crate) fn new(name: String) -> SimpleColumn {
        SimpleColumn { name }
    }

    /// Returns the name of the column.
    pub fn name(&self) -> &str {
        &self.name
    }
}

pub async fn simple_query(client: &InnerClient, query: &str) -> Result<SimpleQueryStream, Error> {
    debug!("executing simple query: {query}");

    let buf = encode(client, query)?;
    let responses = client.send(RequestMessages::Single(FrontendMessage::Raw(buf)))?;

    Ok(SimpleQueryStream {
        responses,
        columns: None,
    })
}

pub async fn batch_execute(client: &InnerClient, query: &str) -> Result<(), Error> {
    debug!("executing statement batch: {query}");

    let buf = encode(client, query)?;
    let mut responses = client.send(RequestMessages::Single(FrontendMessage::Raw(buf)))?;

    loop {
        match responses.next().await? {
            Message::ReadyForQuery(_) => return Ok(()),
            Message::CommandComplete(_)
            | Message::EmptyQueryResponse
            | Message::RowDescription(_)
            | Message::DataRow(_) => {}
            _ => return Err(Error::unexpected_message()),
        }
    }
}

fn encode(client: &InnerClient, query: &str) -> Result<Bytes, Error> {
    client.with_buf(|buf| {
        frontend::query(query, buf).map_err(Error::encode)?;
        Ok(buf.split().freeze())
    })
}

pin_project! {
    /// A stream of simple query results.
    #[project(!Unpin)]
    pub struct SimpleQueryStream {
        responses: Responses,
        columns: Option<Arc<[SimpleColumn]>>,
    }
}

impl Stream for SimpleQueryStream {
    type Item = Result<SimpleQueryMessage, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        match ready!(this.responses.poll_next(cx)?) {
            Message::CommandComplete(body) => {
                let rows = extract_row_affected(&body)?;
                Poll::Ready(Some(Ok(SimpleQueryMessage::CommandComplete(rows))))
            }
            Message::EmptyQueryResponse => {
                Poll::Ready(Some(Ok(SimpleQueryMessage::CommandComplete(0))))
            }
            Message::RowDescription(body) => {
                let columns: Arc<[SimpleColumn]> = body
                    .fields()
                    .map(|f| Ok(SimpleColumn::new(f.name().to_string())))
                    .collect::<Vec<_>>()
                    .map_err(Error::parse)?
                    .into();

                *this.columns = Some(columns.clone());
                Poll::Ready(Some(Ok(SimpleQueryMessage::RowDescription(columns))))
            }
            Message::DataRow(body) => {
                let row = match &this.columns {
                    Some(columns) => SimpleQueryRow::new(columns.clone(), body)?,
                    None => return Poll::Ready(Some(Err(Error::unexpected_message()))),
                };
                Poll::Ready(Some(Ok(SimpleQueryMessage::Row(row))))
            }
            Message::ReadyForQuery(_) => Poll::Ready(None),
            _ => Poll::Ready(Some(Err(Error::unexpected_message()))),
        }
    }
}

/// Runs `query` (one or more statements) with the simple protocol and returns the first
/// statement's result as `Row`s typed by its RowDescription (their values are in text
/// format), with its affected-row count. Later statements run; their rows are discarded.
pub async fn simple_query_first_result(
    client: &Arc<InnerClient>,
    query: &str,
) -> Result<(Vec<Row>, Option<u64>), Error> {
    let buf = encode(client, query)?;
    let mut responses = client.send(RequestMessages::Single(FrontendMessage::Raw(buf)))?;
    let mut description = None;
    let mut bodies = Vec::new();
    let mut rows_affected = None;
    let mut first_done = false;
    loop {
        match responses.next().await? {
            Message::RowDescription(body) if !first_done => description = Some(body),
            Message::DataRow(body) if !first_done => bodies.push(body),
            Message::CommandComplete(body) => {
                if !first_done {
                    // Only tags that carry a count (INSERT 0 2, UPDATE 3, SELECT 1, ...).
                    rows_affected = command_tuples(body.tag().map_err(Error::parse)?);
                    first_done = true;
                }
            }
            Message::EmptyQueryResponse => first_done = true,
            Message::RowDescription(_) | Message::DataRow(_) => {}
            Message::ReadyForQuery(_) => break,
            _ => return Err(Error::unexpected_message()),
        }
    }
    // Column types are looked up only now: a lookup query sent while this response was
    // still arriving would queue behind its rows, and a result larger than the response
    // channel would never let either complete.
    let Some(description) = description else {
        return if bodies.is_empty() { Ok((Vec::new(), rows_affected)) } else { Err(Error::unexpected_message()) };
    };
    let mut columns = Vec::new();
    let mut it = description.fields();
    while let Some(field) = it.next().map_err(Error::parse)? {
        columns.push(Column {
            name: field.name().to_string(),
            table_oid: Some(field.table_oid()).filter(|n| *n != 0),
            column_id: Some(field.column_id()).filter(|n| *n != 0),
            type_modifier: field.type_modifier(),
            type_size: field.type_size(),
            r#type: get_type(client, field.type_oid()).await?,
        });
    }
    let statement = Statement::unnamed(vec![], columns);
    let rows = bodies.into_iter().map(|body| Row::new(statement.clone(), body)).collect::<Result<Vec<_>, _>>()?;
    Ok((rows, rows_affected))
}
