<?xml version="1.0" encoding="utf-8"?>
<!-- herald: shows an RSS or Atom feed opened in a browser as a readable page. -->
<xsl:stylesheet version="1.0"
  xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
  xmlns:atom="http://www.w3.org/2005/Atom"
  xmlns:dc="http://purl.org/dc/elements/1.1/"
  exclude-result-prefixes="atom dc">
  <xsl:output method="html" encoding="utf-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:variable name="lang" select="/rss/channel/@xml:lang | /atom:feed/@xml:lang"/>
  <xsl:variable name="title" select="/rss/channel/title | /atom:feed/atom:title"/>
  <xsl:variable name="self" select="/rss/channel/atom:link[@rel='self']/@href | /atom:feed/atom:link[@rel='self']/@href"/>
  <xsl:variable name="home" select="/rss/channel/link | /atom:feed/atom:link[@rel='alternate']/@href"/>

  <xsl:template match="/">
    <html lang="{$lang}">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (web feed)</title>
        <style>
          body { font: 1rem/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }
          .subscribe { background: #eef4fb; border-left: 4px solid #1f5fa8; padding: .75rem 1rem; }
          code { word-break: break-all; }
          li { margin: 0 0 1rem; }
          time { color: #555; font-size: .9rem; }
          a { color: #1f5fa8; }
        </style>
      </head>
      <body>
        <header>
          <h1><xsl:value-of select="$title"/></h1>
          <p class="subscribe">
            <strong>This is a web feed.</strong>
            To subscribe, copy this address into your feed reader:
            <code><xsl:value-of select="$self"/></code>
          </p>
          <p><a href="{$home}">Open the statements on the website</a></p>
        </header>
        <main>
          <h2>Latest statements</h2>
          <ol>
            <xsl:apply-templates select="/rss/channel/item | /atom:feed/atom:entry"/>
          </ol>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <li lang="{@xml:lang}">
      <a href="{link}"><xsl:value-of select="title"/></a><br/>
      <time><xsl:value-of select="pubDate"/></time>
      <xsl:if test="dc:creator"> · <xsl:value-of select="dc:creator"/></xsl:if>
    </li>
  </xsl:template>

  <xsl:template match="atom:entry">
    <li lang="{@xml:lang}">
      <a href="{atom:link[@rel='alternate'][1]/@href}"><xsl:value-of select="atom:title"/></a><br/>
      <time datetime="{atom:published}"><xsl:value-of select="substring(atom:published, 1, 10)"/></time>
      <xsl:if test="atom:author"> · <xsl:value-of select="atom:author/atom:name"/></xsl:if>
      <xsl:if test="atom:summary"><p><xsl:value-of select="atom:summary"/></p></xsl:if>
    </li>
  </xsl:template>
</xsl:stylesheet>
